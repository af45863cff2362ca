-- Captures a scenario's responses for its same-size baseline: loads the scenario named by
-- BENCH_SCENARIO, writes the body of each of its first 51 responses to BENCH_CAPTURE/<n>.json
-- and the size of every body to BENCH_CAPTURE/sizes.txt (run with one thread and one
-- connection). bench/run.sh keeps the median one, padded to the mean size, as the scenario's
-- typical response.
local wrk_dir = os.getenv("BENCH_WRK") or "bench/wrk"
dofile(wrk_dir .. "/" .. os.getenv("BENCH_SCENARIO") .. ".lua")
local dir = os.getenv("BENCH_CAPTURE")
local n = 0
local sizes = nil
function response(status, headers, body)
  if status ~= 200 then return end
  n = n + 1
  if n <= 51 then
    local f = assert(io.open(dir .. "/" .. n .. ".json", "w"))
    f:write(body)
    f:close()
  end
  sizes = sizes or assert(io.open(dir .. "/sizes.txt", "w"))
  sizes:write(#body, "\n")
  sizes:flush()
end
