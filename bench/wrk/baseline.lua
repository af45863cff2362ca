-- The baseline server answers /<scenario> with that scenario's captured response (and any
-- other path with the feed page): wrk's own request for the URL it is given.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
