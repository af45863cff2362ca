-- Traffic shaped like the app: mostly feed reads, some likes, comments and chat.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
local n = 0
function request()
  n = n + 1
  local u = any_user()
  local r = math.random(100)
  if r <= 70 then
    return get("/douyin/feed/?token=" .. u.token .. "&latest_time=" .. feed_pages[skewed(#feed_pages, 4)])
  elseif r <= 76 then
    return get("/douyin/comment/list/?video_id=" .. videos[skewed(#videos, 3)] .. "&token=" .. u.token)
  elseif r <= 81 then
    return get("/douyin/user/?user_id=" .. users[skewed(#users, 2)].id .. "&token=" .. u.token)
  elseif r <= 87 then
    local p = friends[skewed(#friends, 1.5)]
    return get("/douyin/message/chat/?token=" .. token_of[p[1]] .. "&to_user_id=" .. p[2] .. "&pre_msg_time=" .. (os.time() * 1000 - 5000))
  elseif r <= 89 then
    return get("/douyin/favorite/list/?user_id=" .. u.id .. "&token=" .. u.token)
  elseif r <= 96 then
    return post("/douyin/favorite/action/?token=" .. u.token .. "&video_id=" .. videos[skewed(#videos, 3)] .. "&action_type=" .. math.random(1, 2))
  elseif r <= 98 then
    return post("/douyin/comment/action/?token=" .. u.token .. "&video_id=" .. videos[skewed(#videos, 3)] .. "&action_type=1&comment_text=mixed" .. n)
  else
    local p = friends[math.random(#friends)]
    return post("/douyin/message/action/?token=" .. token_of[p[1]] .. "&to_user_id=" .. p[2] .. "&action_type=1&content=mixed" .. n)
  end
end
