-- The last page of 100 users by cursor: $LAST_CURSOR points just before
-- the tenant's last 100 users in cursor order.
package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local path = "/scim/v2/Users?count=100&cursor=" .. os.getenv("LAST_CURSOR")
request = function()
  return wrk.format("GET", path, c.headers)
end
