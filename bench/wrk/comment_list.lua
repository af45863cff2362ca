-- Comments of a popularity-skewed video, as seen by a logged-in viewer.
dofile((os.getenv("BENCH_WRK") or "bench/wrk") .. "/common.lua")
function request()
  return get("/douyin/comment/list/?video_id=" .. videos[skewed(#videos, 3)] .. "&token=" .. any_user().token)
end
