package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
request = function()
  local k = c.user(); c.counter = c.counter + 1
  local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],' ..
    '"userName":"' .. c.names[k] .. '","externalId":"ext-' .. k .. '","active":true,"displayName":"Benchmark User ' .. k .. '",' ..
    '"title":"Title ' .. c.counter .. '","name":{"givenName":"Given' .. k .. '","familyName":"Family' .. k .. '"},' ..
    '"emails":[{"value":"' .. c.names[k] .. '@example.com","type":"work","primary":true}],' ..
    '"phoneNumbers":[{"value":"+1 555 0100","type":"work"}],' ..
    '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Tour Operations","costCenter":"4130"}}'
  return wrk.format("PUT", "/scim/v2/Users/" .. c.ids[k], c.headers, body)
end
