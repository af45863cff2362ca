// k6 version of the wrk scenarios (bench/wrk/*.lua), for teams that load-test with k6.
//   k6 run -e BASE=http://127.0.0.1:8080 -e DATA=bench/data -e SCENARIO=feed_user \
//          -e VUS=64 -e DURATION=10s bench/k6/scenarios.js
// DATA is the directory `douyin-lite seed --bench --out DIR` wrote. bench/run.sh runs it when
// k6 is installed.
import http from 'k6/http';
import { check } from 'k6';

const BASE = __ENV.BASE || 'http://127.0.0.1:8080';
const DATA = __ENV.DATA || 'bench/data';
const SCENARIO = __ENV.SCENARIO || 'mixed';

export const options = {
  vus: parseInt(__ENV.VUS || '64', 10),
  duration: __ENV.DURATION || '10s',
  thresholds: { checks: ['rate>0.99'] },
};

const lines = (name) => open(`${DATA}/${name}`).split('\n').filter((l) => l.length > 0);
const users = [];
const fresh = [];
{
  let into = users;
  for (const l of lines('users.txt')) {
    if (l === '# fresh') { into = fresh; continue; }
    const [id, token] = l.split(' ');
    into.push({ id, token });
  }
}
const tokenOf = Object.fromEntries(users.concat(fresh).map((u) => [u.id, u.token]));
const videos = lines('videos.txt');
const friends = lines('friends.txt').map((l) => l.split(' '));
const feedPages = lines('feed_pages.txt');

const skewed = (n, skew) => Math.min(n - 1, Math.floor(Math.pow(Math.random(), skew) * n));
const pick = (a) => a[Math.floor(Math.random() * a.length)];
const ok = (res) => check(res, {
  'status_code 0': (r) => r.status === 200 && r.body.indexOf('"status_code":0') >= 0,
});

const SCENARIOS = {
  feed_anon: () => http.get(`${BASE}/douyin/feed/`),
  feed_user: () => http.get(`${BASE}/douyin/feed/?token=${pick(users).token}&latest_time=${feedPages[skewed(feedPages.length, 4)]}`),
  user_info: () => http.get(`${BASE}/douyin/user/?user_id=${users[skewed(users.length, 2)].id}&token=${pick(users).token}`),
  publish_list: () => http.get(`${BASE}/douyin/publish/list/?user_id=${pick(users).id}&token=${pick(users).token}`),
  favorite_list: () => http.get(`${BASE}/douyin/favorite/list/?user_id=${pick(users).id}&token=${pick(users).token}`),
  comment_list: () => http.get(`${BASE}/douyin/comment/list/?video_id=${videos[skewed(videos.length, 3)]}&token=${pick(users).token}`),
  follow_list: () => { const u = pick(users); return http.get(`${BASE}/douyin/relation/follow/list/?user_id=${u.id}&token=${u.token}`); },
  follower_list: () => { const u = pick(users); return http.get(`${BASE}/douyin/relation/follower/list/?user_id=${u.id}&token=${u.token}&count=100`); },
  friend_list: () => { const p = pick(friends); return http.get(`${BASE}/douyin/relation/friend/list/?user_id=${p[0]}&token=${tokenOf[p[0]]}`); },
  chat_poll: () => { const p = friends[skewed(friends.length, 1.5)]; return http.get(`${BASE}/douyin/message/chat/?token=${tokenOf[p[0]]}&to_user_id=${p[1]}&pre_msg_time=${Date.now() - 5000}`); },
  like_toggle: () => http.post(`${BASE}/douyin/favorite/action/?token=${pick(users).token}&video_id=${videos[skewed(200, 1.5)]}&action_type=${1 + Math.floor(Math.random() * 2)}`),
  comment_post: () => http.post(`${BASE}/douyin/comment/action/?token=${pick(users).token}&video_id=${videos[skewed(videos.length, 3)]}&action_type=1&comment_text=k6%20comment`),
  follow: () => http.post(`${BASE}/douyin/relation/action/?token=${pick(users).token}&to_user_id=${users[skewed(users.length, 2)].id}&action_type=${1 + Math.floor(Math.random() * 2)}`),
  message_send: () => { const p = pick(friends); return http.post(`${BASE}/douyin/message/action/?token=${tokenOf[p[0]]}&to_user_id=${p[1]}&action_type=1&content=k6`); },
  register_login: () => (Math.random() < 0.5
    ? http.post(`${BASE}/douyin/user/register/?username=k6_${__VU}_${__ITER}_${Date.now() % 100000}&password=bench-password`)
    : http.post(`${BASE}/douyin/user/login/?username=bench_${Math.floor(Math.random() * users.length)}&password=bench-password`)),
  mixed: () => {
    const r = Math.random() * 100;
    if (r < 70) return SCENARIOS.feed_user();
    if (r < 76) return SCENARIOS.comment_list();
    if (r < 81) return SCENARIOS.user_info();
    if (r < 87) return SCENARIOS.chat_poll();
    if (r < 89) return SCENARIOS.favorite_list();
    if (r < 96) return SCENARIOS.like_toggle();
    if (r < 98) return SCENARIOS.comment_post();
    return SCENARIOS.message_send();
  },
};

if (!SCENARIOS[SCENARIO]) throw new Error(`unknown SCENARIO ${SCENARIO}`);

export default function () {
  ok(SCENARIOS[SCENARIO]());
}
