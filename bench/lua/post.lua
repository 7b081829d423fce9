package.path = os.getenv("LUA_DIR") .. "/?.lua;" .. package.path
local c = require("common")
request = function()
  return wrk.format("POST", "/scim/v2/Users", c.headers, c.post_body())
end
