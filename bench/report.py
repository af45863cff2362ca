#!/usr/bin/env python3
"""Writes bench/RESULTS.md from the runner's measurements (called by bench/run.sh)."""
import datetime
import json
import os
import platform
import subprocess
import sys

(results_file, out, seed_txt, seed_secs, rebuild_secs, like_check, final_check, final_rss,
 conns, threads, duration, k6, metrics, page_bytes) = sys.argv[1:15]

rows = [json.loads(l) for l in open(results_file) if l.strip()]
by = {r["name"]: r for r in rows}
base = by["baseline"]
like_check = json.loads(like_check or "{}")
try:
    final = json.loads(final_check)
except ValueError:
    final = {"mismatches": "check failed to run", "examples": [final_check[:500]]}

READS = ["feed_anon", "feed_user", "user_info", "publish_list", "favorite_list", "comment_list",
         "follow_list", "follower_list", "friend_list", "chat_poll"]
DESCRIBE = {
    "baseline": "precomputed feed page (bench-baseline)",
    "feed_anon": "anonymous feed, newest page",
    "feed_user": "logged-in feed, paged with next_time",
    "user_info": "user info (logged-in viewer)",
    "publish_list": "publish list",
    "favorite_list": "favorite list (~110 videos each)",
    "comment_list": "comment list of skewed videos",
    "follow_list": "follow list",
    "follower_list": "follower list (count=100)",
    "friend_list": "friend list with latest messages",
    "chat_poll": "chat polling (pre_msg_time = now - 5 s)",
    "like": "like (fresh users, distinct pairs; durable)",
    "like_toggle": "like/unlike on the 200 hottest videos",
    "comment_post": "post comments",
    "follow": "follow/unfollow",
    "message_send": "send messages",
    "register_login": "register + login (argon2)",
    "mixed": "mixed traffic (70% feed, reads, likes, comments, chat)",
}


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def errors(r):
    # envelope failures seen by wrk ("failed") are among the api_errors already
    return r["socket_errors"] + r["http_errors"] + r["timeouts"] + r.get("api_errors", 0)


def ms(us):
    return f"{us / 1000:.2f}"


cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip() or platform.processor()
lines = []
w = lines.append
w("# Benchmark results")
w("")
w(f"Written by `bench/run.sh` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. "
  "Re-run it to reproduce; every figure below comes from that one run.")
w("")
w(f"- Machine: {os.cpu_count()} cores ({cpu}), {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB; "
  "wrk, Redis and the server share the cores.")
w(f"- Load: wrk, {threads} threads, {conns} connections, {duration} per scenario after a warm-up; "
  f"{sh('wrk --version 2>&1 | head -1')}; {sh('redis-server --version')}.")
w(f"- k6: {k6}" + ("" if k6 == "installed" else " (bench/k6/scenarios.js runs where it is; the figures here are wrk's)."))
w(f"- Data set: {seed_txt.strip()}")
w(f"- Redis loaded from the durable store by `rebuild-cache` in {rebuild_secs} s; seeding took {seed_secs} s.")
w(f"- Server: release build, default config (near-cache on, 1 s age bound), log level warn.")
w(f"- Baseline: `bench-baseline` serving a real logged-in feed page of {page_bytes} bytes "
  "(30 videos with authors) from memory; every ratio below is to its req/s in this run.")
w("")
w("## Scenarios")
w("")
w("| scenario | req/s | ratio to baseline | p50 ms | p99 ms | p99 / baseline p99 | errors | Redis round trips / req | server RSS MB |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    n = r["name"]
    rt = "" if n == "baseline" else f"{r['round_trips'] / max(r['requests'], 1):.2f}"
    w(f"| {n}: {DESCRIBE.get(n, n)} | {r['rps']:.0f} | {r['rps'] / base['rps']:.2f} | {ms(r['p50_us'])} | "
      f"{ms(r['p99_us'])} | {r['p99_us'] / max(base['p99_us'], 1):.1f} | {errors(r)} | {rt} | "
      f"{r['rss_kb'] / 1024:.0f} |")
w("")
w("Errors are wrk's socket errors, timeouts and non-2xx answers plus the API's non-zero "
  "`status_code`s (from /metrics). Redis round trips come from /metrics too.")
w("")

# Targets
w("## Targets")
w("")
w("| target | measured | met |")
w("|---|---|---|")
misses = []


def target(name, ok, measured, miss_note=None):
    w(f"| {name} | {measured} | {'yes' if ok else '**no**'} |")
    if not ok and miss_note:
        misses.append((name, miss_note))


for scen, want in [("feed_user", 0.40), ("feed_anon", 0.60), ("user_info", 0.60), ("comment_list", 0.60)]:
    if scen in by:
        ratio = by[scen]["rps"] / base["rps"]
        target(f"{scen} ≥ {want:.0%} of baseline req/s", ratio >= want,
               f"{ratio:.0%} ({by[scen]['rps']:.0f} vs {base['rps']:.0f})",
               f"short by {(want - ratio) / want:.0%} of the target")
if "like" in by:
    r = by["like"]
    acked = r["acked"]
    target("likes ≥ 10,000 durable actions/s", r["rps"] >= 10_000, f"{r['rps']:.0f}/s",
           f"short by {(10_000 - r['rps']) / 10_000:.0%}")
    b, a = like_check.get("before", {}), like_check.get("after", {})
    if b and a:
        added = a["likes"] - b["likes"]
        exact = a["mismatches"] == 0 and acked <= added <= acked + int(conns)
        target("no lost or double-counted like (checked against the durable records)", exact,
               f"{acked} likes acknowledged, {added} like records added "
               f"(up to {conns} more may complete after wrk hangs up), "
               f"{a['mismatches']} counter mismatches in the store or Redis")
slow = [(n, by[n]["p99_us"] / max(base["p99_us"], 1)) for n in READS if n in by]
worst = max(slow, key=lambda x: x[1]) if slow else ("-", 0)
target("p99 of every read ≤ 3× the baseline's p99", all(x <= 3 for _, x in slow),
       f"worst: {worst[0]} at {worst[1]:.1f}×; over 3×: "
       + (", ".join(f"{n} {x:.1f}×" for n, x in slow if x > 3) or "none"))
w(f"| server RSS with the full data set loaded and warm | {int(final_rss) / 1024:.0f} MB after every scenario | stated |")
w(f"| final consistency check (every counter vs its records, Redis vs durable) | "
  f"{final.get('mismatches')} mismatches over {final.get('users', '?')} users, {final.get('videos', '?')} videos, "
  f"{final.get('likes', '?')} likes | {'yes' if final.get('mismatches') == 0 else '**no**'} |")
w("")
if metrics.strip():
    w("Near-cache and store figures at the end of the run (from /metrics):")
    w("")
    w("```")
    w(metrics.strip())
    w("```")
    w("")

notes_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")
w("## Misses, and what would close them")
w("")
if misses:
    for name, note in misses:
        w(f"- **{name}**: {note}.")
    w("")
    if os.path.exists(notes_file):
        w(open(notes_file).read().strip())
        w("")
else:
    w("None in this run.")
    w("")
open(out, "w").write("\n".join(lines))
