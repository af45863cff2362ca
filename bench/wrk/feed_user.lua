-- Logged-in feed paged with next_time: mostly the first pages, some deep ones.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request()
  local u = any_user()
  local t = feed_pages[skewed(#feed_pages, 4)]
  return get("/douyin/feed/?token=" .. u.token .. "&latest_time=" .. t)
end
