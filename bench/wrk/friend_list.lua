-- A user's friends with the latest message of each.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request()
  local p = friends[math.random(#friends)]
  return get("/douyin/relation/friend/list/?user_id=" .. p[1] .. "&token=" .. token_of[p[1]])
end
