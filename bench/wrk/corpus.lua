-- wrk script for bench/run: POSTs the corpus bodies in turn (one compact JSON
-- per line of the file given as the first script argument), with the
-- Authorization header given as the second, and prints one machine-readable
-- line at the end. Every request gets an eventId of its own (the corpus's,
-- suffixed with the run's start time, the thread and a counter): hookbox
-- answers a repeated eventId with the same body from its store without
-- running the plugin (Okta's retry), so cycling the corpus as it is would
-- measure that replay instead of the plugin after the first pass.
--   RESULT requests=N duration_us=N rps=N p50_us=N p99_us=N p999_us=N max_us=N errors=N non2xx=N
--
--   wrk -t1 -c16 -d10s -s corpus.lua https://127.0.0.1:8443/hooks/dev/import -- corpus.jsonl SECRET

local bodies = {}
local headers
local n = 0
local i = 0
local sent = 0
local suffix

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

function init(args)
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = args[2] or "",
  }
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      bodies[n] = line
    end
  end
  suffix = string.format("-%d-%d-", os.time(), thread_no or 0)
  -- Threads start at different places so they do not send the same body at once.
  i = ((thread_no or 1) * 7919) % n
end

function request()
  i = i % n + 1
  sent = sent + 1
  local body = bodies[i]:gsub('"eventId":"([^"]*)"', '"eventId":"%1' .. suffix .. sent .. '"', 1)
  return wrk.format("POST", wrk.path, headers, body)
end

function done(summary, latency, _)
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d p999_us=%d max_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    socket_errors, e.status))
end
