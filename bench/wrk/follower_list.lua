-- A user's followers (first page of at most 100).
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request()
  local u = any_user()
  return get("/douyin/relation/follower/list/?user_id=" .. u.id .. "&token=" .. u.token .. "&count=100")
end
