-- A page of 100 users by index (startIndex, as Okta's import pages), at a
-- random place among the first 100,000.
package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
request = function()
  local start = math.random(0, 999) * 100 + 1
  return wrk.format("GET", "/scim/v2/Users?startIndex=" .. start .. "&count=100", c.headers)
end
