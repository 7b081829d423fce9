package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
request = function()
  local k = c.user()
  return wrk.format("GET", "/scim/v2/Users/" .. c.ids[k], c.headers)
end
