package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
request = function()
  local k = c.user()
  return wrk.format("GET", "/scim/v2/Users?filter=userName%20eq%20%22" .. c.names[k] .. "%22", c.headers)
end
