-- A user's liked videos (about 110 each), as seen by a logged-in viewer.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request()
  return get("/douyin/favorite/list/?user_id=" .. any_user().id .. "&token=" .. any_user().token)
end
