-- Shared by the wrk scripts: users (id and userName) from $IDS, the token
-- from $TOKEN, the big group from $GROUP, a per-thread counter.
local M = {}
-- Each wrk thread has its own Lua state: seed each differently.
math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000003)
M.ids, M.names = {}, {}
for line in io.lines(os.getenv("IDS")) do
  local id, name = line:match("^(%S+)%s+(%S+)$")
  M.ids[#M.ids + 1] = id
  M.names[#M.names + 1] = name
end
M.n = tonumber(os.getenv("N"))
M.headers = {
  ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
  ["Content-Type"] = "application/scim+json",
}
M.group = os.getenv("GROUP")
M.counter = 0
function M.user() return math.random(1, M.n) end
function M.patch_body(k)
  return '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[' ..
    '{"op":"Replace","path":"emails[type eq \\"work\\"].value","value":"' .. M.names[k] .. '+' .. M.counter .. '@example.com"},' ..
    '{"op":"Replace","path":"name.familyName","value":"Family' .. M.counter .. '"}]}'
end
function M.post_body()
  M.counter = M.counter + 1
  local name = "w" .. math.random(1, 1000000000) .. "-" .. M.counter
  return '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name .. '",' ..
    '"name":{"givenName":"New","familyName":"User"},"emails":[{"value":"' .. name .. '@example.com","type":"work","primary":true}],"active":true}'
end
return M
