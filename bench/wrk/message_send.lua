-- Sending chat messages between friends.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
local n = 0
function request()
  n = n + 1
  local p = friends[math.random(#friends)]
  return post("/douyin/message/action/?token=" .. token_of[p[1]] .. "&to_user_id=" .. p[2] .. "&action_type=1&content=" .. urlencode("bench message " .. n))
end
response = count_response
