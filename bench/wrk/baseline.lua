-- The baseline server answers any path with its precomputed feed page.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request() return get("/douyin/feed/") end
