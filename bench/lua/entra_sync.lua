-- Entra's sync mix: 60% GET by filter, 30% PATCH, 10% POST.
package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
request = function()
  local r = math.random(1, 10)
  local k = c.user(); c.counter = c.counter + 1
  if r <= 6 then
    return wrk.format("GET", "/scim/v2/Users?filter=userName%20eq%20%22" .. c.names[k] .. "%22", c.headers)
  elseif r <= 9 then
    return wrk.format("PATCH", "/scim/v2/Users/" .. c.ids[k], c.headers, c.patch_body(k))
  else
    return wrk.format("POST", "/scim/v2/Users", c.headers, c.post_body())
  end
end
