-- Likes only, by the fresh users (who like nothing in the data set), never the same
-- (user, video) twice: every acknowledged like must be one more like record afterwards.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
local n = 0
-- BENCH_THREAD_BASE: added to the thread number, so that wrk processes run side by side (one
-- per instance, bench/cql.sh) never like the same pair
local base = tonumber(os.getenv("BENCH_THREAD_BASE") or "0")
function request()
  n = n + 1
  local k = n * 16 + thread_no + base  -- distinct across threads (up to 16)
  local u = fresh[(k % #fresh) + 1]
  local v = videos[(math.floor(k / #fresh) % #videos) + 1]
  return post("/douyin/favorite/action/?token=" .. u.token .. "&video_id=" .. v .. "&action_type=1")
end
response = count_response
