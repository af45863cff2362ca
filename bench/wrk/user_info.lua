-- User info of a (popularity-skewed) user, as seen by a logged-in viewer.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request()
  return get("/douyin/user/?user_id=" .. users[skewed(#users, 2)].id .. "&token=" .. any_user().token)
end
