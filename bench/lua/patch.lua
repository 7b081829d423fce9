package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
request = function()
  local k = c.user(); c.counter = c.counter + 1
  return wrk.format("PATCH", "/scim/v2/Users/" .. c.ids[k], c.headers, c.patch_body(k))
end
