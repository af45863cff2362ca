-- One hot video: the fresh users take turns liking and unliking the most popular video, so
-- every request changes its counter (the worst case for a counter partition).
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
local n = 0
local base = tonumber(os.getenv("BENCH_THREAD_BASE") or "0")
function request()
  n = n + 1
  local k = n * 16 + thread_no + base
  local u = fresh[(k % #fresh) + 1]
  local action = (math.floor(k / #fresh) % 2 == 0) and "1" or "2"
  return post("/douyin/favorite/action/?token=" .. u.token .. "&video_id=" .. videos[1] .. "&action_type=" .. action)
end
response = count_response
