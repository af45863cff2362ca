-- Like and unlike by everyone on the 200 most popular videos: the worst contention.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request()
  local u = any_user()
  local v = videos[skewed(200, 1.5)]
  return post("/douyin/favorite/action/?token=" .. u.token .. "&video_id=" .. v .. "&action_type=" .. math.random(1, 2))
end
response = count_response
