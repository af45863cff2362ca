-- Posting comments on popularity-skewed videos.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
local n = 0
function request()
  n = n + 1
  local u = any_user()
  return post("/douyin/comment/action/?token=" .. u.token .. "&video_id=" .. videos[skewed(#videos, 3)] .. "&action_type=1&comment_text=" .. urlencode("bench comment " .. n))
end
response = count_response
