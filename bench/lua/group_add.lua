-- Entra's single-member add, then its removal, of users outside the big
-- group (the extra users after the first N), so every request changes a row.
package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local pending = nil
request = function()
  local op, k
  if pending then op, k, pending = "Remove", pending, nil
  else k = c.n + math.random(1, #c.ids - c.n); op, pending = "Add", k end
  local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"' .. op ..
    '","path":"members","value":[{"$ref":null,"value":"' .. c.ids[k] .. '"}]}]}'
  return wrk.format("PATCH", "/scim/v2/Groups/" .. c.group, c.headers, body)
end
