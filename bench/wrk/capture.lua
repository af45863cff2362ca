-- Captures a scenario's responses for its same-size baseline: loads the scenario named by
-- BENCH_SCENARIO, then writes the body of each of its first 51 responses to
-- BENCH_CAPTURE/<n>.json (run with one thread and one connection). bench/run.sh keeps the
-- one of median size as the scenario's typical response.
local wrk_dir = os.getenv("BENCH_WRK") or "bench/wrk"
dofile(wrk_dir .. "/" .. os.getenv("BENCH_SCENARIO") .. ".lua")
local dir = os.getenv("BENCH_CAPTURE")
local n = 0
function response(status, headers, body)
  n = n + 1
  if n <= 51 and status == 200 then
    local f = assert(io.open(dir .. "/" .. n .. ".json", "w"))
    f:write(body)
    f:close()
  end
end
