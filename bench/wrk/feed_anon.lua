-- Anonymous feed, newest page (what the app shows on open).
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request() return get("/douyin/feed/") end
