-- wrk script: POST the body in $BODY_FILE with $CONTENT_TYPE; print one summary line.
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "application/json"
for name, value in string.gmatch(os.getenv("EXTRA_HEADERS") or "", "([^:\n]+): ([^\n]+)") do
  wrk.headers[name] = value
end
local file = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = file:read("*a")
file:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%.0f p90_us=%.0f " ..
                         "p99_us=%.0f errors=%d\n",
                         summary.requests, summary.duration, latency:percentile(50),
                         latency:percentile(90), latency:percentile(99),
                         e.status + e.connect + e.read + e.write + e.timeout))
end
