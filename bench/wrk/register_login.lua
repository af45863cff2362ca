-- Register (new names) and log in (seeded users), half and half: argon2-bound.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
local n = 0
function request()
  n = n + 1
  if n % 2 == 0 then
    return post("/douyin/user/register/?username=" .. string.format("r%d_%d_%d", thread_no, os.time() % 100000, n) .. "&password=bench-password")
  end
  return post("/douyin/user/login/?username=bench_" .. math.random(0, #users - 1) .. "&password=bench-password")
end
response = count_response
