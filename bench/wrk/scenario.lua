-- One wrk script for every bench scenario: `wrk ... -s scenario.lua URL -- NAME LO HI THREADS`.
-- It prints one line, BENCH_RESULT {json}, so the Python side never scrapes wrk's table.
-- Counters are globals, not locals: wrk's thread:get() reads a thread's globals only.

threads = {}
conflicts, non2xx, next_id, bodies = 0, 0, 0, 0
etags = {}
local words = { "alpha", "bravo", "charlie", "delta", "echo", "foxtrot" }
local json = { ["Content-Type"] = "application/json" }
local scenario, first_id, last_id

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads - 1)
end

function init(args)
  scenario = args[1]
  local lo = tonumber(args[2] or "1")
  local hi = tonumber(args[3] or "1")
  local thread_count = tonumber(args[4] or "1")
  -- Each thread owns its own slice of the ids, so PUTs of two threads never race for one
  -- note and a 412 means an ETag was lost, not contention between generator threads.
  local slice = math.max(1, math.floor((hi - lo + 1) / thread_count))
  first_id = lo + (thread_index % thread_count) * slice
  last_id = math.min(hi, first_id + slice - 1)
  if last_id < first_id then last_id = first_id end
end

local function pick_id()
  local span = last_id - first_id + 1
  local id = first_id + (next_id % span)
  next_id = next_id + 1
  return id
end

local function note_body()
  bodies = bodies + 1
  return string.format(
    '{"title": "bench note %d", "body": "measured %s %d", "tags": ["bench", "%s"]}',
    bodies, words[(bodies % #words) + 1], bodies, words[((bodies + 1) % #words) + 1])
end

function request()
  if scenario == "hello" then
    return wrk.format("GET", "/hello")
  elseif scenario == "insert" then
    return wrk.format("POST", "/insert", json, note_body())
  elseif scenario == "get_note" then
    return wrk.format("GET", "/api/notes/" .. pick_id())
  elseif scenario == "list" then
    return wrk.format("GET", "/api/notes?limit=20")
  elseif scenario == "search" then
    next_id = next_id + 1
    return wrk.format("GET", "/api/notes?q=" .. words[(next_id % #words) + 1] .. "&limit=20")
  elseif scenario == "create_note" then
    return wrk.format("POST", "/api/notes", json, note_body())
  elseif scenario == "update_note" then
    local id = pick_id()
    local headers = { ["Content-Type"] = "application/json", ["If-Match"] = etags[id] or "*" }
    return wrk.format("PUT", "/api/notes/" .. id, headers, note_body())
  end
  error("unknown scenario " .. tostring(scenario))
end

function response(status, headers, body)
  if status == 412 then
    conflicts = conflicts + 1
  elseif status >= 300 then
    non2xx = non2xx + 1
  end
  if scenario == "update_note" and status == 200 then
    local id = tonumber(string.match(body, '"id"%s*:%s*(%d+)'))
    if id then etags[id] = headers["ETag"] or headers["etag"] end
  end
end

function done(summary, latency, requests)
  local total_conflicts, total_non2xx = 0, 0
  for _, thread in ipairs(threads) do
    total_conflicts = total_conflicts + (thread:get("conflicts") or 0)
    total_non2xx = total_non2xx + (thread:get("non2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, ' ..
    '"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"conflicts": %d, "non2xx": %d}\n',
    summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout, total_conflicts, total_non2xx))
end
