-- A user's videos, as seen by a logged-in viewer.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request()
  return get("/douyin/publish/list/?user_id=" .. any_user().id .. "&token=" .. any_user().token)
end
