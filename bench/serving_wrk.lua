-- wrk script of bench/serving_benchmark.py: POST one JSON body over and over, then print a summary.
--
--   WRK_BODY_FILE=body.json wrk -t1 -c1 -d10s --timeout 10s --latency -s bench/serving_wrk.lua URL
--
-- The body is read once per wrk thread from the file named by WRK_BODY_FILE. At the end, one line
-- "WRK-RESULT {json}" holds the counts and the latency percentiles in microseconds (wrk's own
-- --latency table is printed too, for a human).

local path = os.getenv("WRK_BODY_FILE")
if path == nil or path == "" then
  error("set WRK_BODY_FILE to the file holding the JSON body to POST")
end
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, "connect": %.0f, "read": %.0f, '
      .. '"write": %.0f, "status": %.0f, "timeout": %.0f, "p50_us": %.0f, "p90_us": %.0f, "p99_us": %.0f, '
      .. '"max_us": %.0f, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
  ))
end
