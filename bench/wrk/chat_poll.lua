-- Chat polling: new messages since a recent time (usually none).
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request()
  local p = friends[skewed(#friends, 1.5)]
  return get("/douyin/message/chat/?token=" .. token_of[p[1]] .. "&to_user_id=" .. p[2] .. "&pre_msg_time=" .. (os.time() * 1000 - 5000))
end
