-- Follow and unfollow of popularity-skewed users.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request()
  local u = any_user()
  local to = users[skewed(#users, 2)]
  -- never oneself (the API refuses it): users[1] turned to users[1] once in 74,296 requests
  if to.id == u.id then to = (u.id == users[1].id) and users[2] or users[1] end
  return post("/douyin/relation/action/?token=" .. u.token .. "&to_user_id=" .. to.id .. "&action_type=" .. math.random(1, 2))
end
response = count_response
