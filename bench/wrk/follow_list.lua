-- Whom a user follows.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request()
  local u = any_user()
  return get("/douyin/relation/follow/list/?user_id=" .. u.id .. "&token=" .. u.token)
end
