-- Shared by every scenario: the seeded data (bench/data, written by `douyin-lite seed --bench`),
-- skewed picks, and a machine-readable summary line for bench/run.sh.
local data = os.getenv("BENCH_DATA") or "bench/data"

local function lines(name)
  local out = {}
  local f = assert(io.open(data .. "/" .. name, "r"), "missing " .. data .. "/" .. name .. " (run seed --bench)")
  for l in f:lines() do out[#out + 1] = l end
  f:close()
  return out
end

users, fresh = {}, {}   -- {id, token}; `fresh` users like nothing in the data set
do
  local into = users
  for _, l in ipairs(lines("users.txt")) do
    if l == "# fresh" then into = fresh else
      local id, token = l:match("^(%d+) (%S+)$")
      into[#into + 1] = {id = id, token = token}
    end
  end
end
videos = lines("videos.txt")         -- most popular first
friends = {}
for _, l in ipairs(lines("friends.txt")) do
  local a, b = l:match("^(%d+) (%d+)$")
  friends[#friends + 1] = {a, b}
end
feed_pages = lines("feed_pages.txt") -- latest_time per page, newest first
token_of = {}
for _, u in ipairs(users) do token_of[u.id] = u.token end
for _, u in ipairs(fresh) do token_of[u.id] = u.token end

math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))

-- A skewed index in 1..n: low indexes (popular items) far more often.
function skewed(n, skew)
  local i = math.floor((math.random() ^ (skew or 3)) * n) + 1
  if i > n then i = n end
  return i
end

function any_user() return users[math.random(#users)] end

function get(path)
  return wrk.format("GET", path)
end

function post(path)
  return wrk.format("POST", path, {["Content-Length"] = "0"})
end

function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- Thread numbering and the per-thread counters that done() sums up.
local threads = {}
local counter = 1
function setup(thread)
  thread:set("thread_no", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

acked, failed = 0, 0
-- Scenarios that count successes set `count_envelopes = true`: response() then reads each
-- body's status_code (costly for wrk, so only where the count matters).
function count_response(status, headers, body)
  if status == 200 and body:find('"status_code":0', 1, true) then
    acked = acked + 1
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local a, f = 0, 0
  for _, t in ipairs(threads) do
    a = a + (t:get("acked") or 0)
    f = f + (t:get("failed") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"socket_errors":%d,"http_errors":%d,"timeouts":%d,"acked":%d,"failed":%d,"bytes":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect + e.read + e.write, e.status, e.timeout, a, f, summary.bytes))
end
