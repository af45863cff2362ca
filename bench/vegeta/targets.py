#!/usr/bin/env python3
"""The mixed traffic of bench/wrk/mixed.lua as vegeta targets (JSON lines, vegeta's `-format=json`).

    python3 bench/vegeta/targets.py DATA BASE N > targets.jsonl

DATA is the directory `douyin-lite seed --bench --out DIR` wrote, BASE the server's URL, N the
number of requests (vegeta cycles through them). Same mix and skew as mixed.lua: 70% feed
pages, then comment lists, user info, chat polls, favorite lists, likes/unlikes, comments and
messages.
"""
import json
import random
import sys
import time
from urllib.parse import quote

data, base, n = sys.argv[1], sys.argv[2].rstrip("/"), int(sys.argv[3])


def lines(name):
    with open(f"{data}/{name}") as f:
        return [l.strip() for l in f if l.strip()]


users, fresh, into = [], [], None
into = users
for l in lines("users.txt"):
    if l == "# fresh":
        into = fresh
        continue
    uid, token = l.split(" ")
    into.append((uid, token))
token_of = dict(users + fresh)
videos = lines("videos.txt")
friends = [tuple(l.split(" ")) for l in lines("friends.txt")]
feed_pages = lines("feed_pages.txt")


def skewed(k, skew=3.0):
    return min(int((random.random() ** skew) * k), k - 1)


def target(method, path):
    return json.dumps({"method": method, "url": base + path})


random.seed(12)
now_ms = int(time.time() * 1000)
out = sys.stdout
for i in range(n):
    uid, token = random.choice(users)
    t = quote(token)
    r = random.randint(1, 100)
    if r <= 70:
        path = f"/douyin/feed/?token={t}&latest_time={feed_pages[skewed(len(feed_pages), 4)]}"
        out.write(target("GET", path))
    elif r <= 76:
        out.write(target("GET", f"/douyin/comment/list/?video_id={videos[skewed(len(videos))]}&token={t}"))
    elif r <= 81:
        out.write(target("GET", f"/douyin/user/?user_id={users[skewed(len(users), 2)][0]}&token={t}"))
    elif r <= 87:
        a, b = friends[skewed(len(friends), 1.5)]
        # chat polls ask for the last minute of messages (the targets are reused for the run)
        out.write(target("GET", f"/douyin/message/chat/?token={quote(token_of[a])}&to_user_id={b}"
                                f"&pre_msg_time={now_ms - 60_000}"))
    elif r <= 89:
        out.write(target("GET", f"/douyin/favorite/list/?user_id={uid}&token={t}"))
    elif r <= 96:
        out.write(target("POST", f"/douyin/favorite/action/?token={t}&video_id="
                                 f"{videos[skewed(len(videos))]}&action_type={random.randint(1, 2)}"))
    elif r <= 98:
        out.write(target("POST", f"/douyin/comment/action/?token={t}&video_id="
                                 f"{videos[skewed(len(videos))]}&action_type=1&comment_text=vegeta{i}"))
    else:
        a, b = random.choice(friends)
        out.write(target("POST", f"/douyin/message/action/?token={quote(token_of[a])}&to_user_id={b}"
                                 f"&action_type=1&content=vegeta{i}"))
    out.write("\n")
