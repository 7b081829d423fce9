-- The first page of 100 users by cursor (RFC 9865).
package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
request = function()
  return wrk.format("GET", "/scim/v2/Users?cursor=&count=100", c.headers)
end
