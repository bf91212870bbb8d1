-- wrk script: every request carries the demo tenant's Clickpost key and a body that is not JSON (a
-- new one each time), so each is authenticated, answered 400 and quarantined as a new body.
local counter = 0
local prefix

init = function(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  prefix = tostring(math.random(1, 1e9))
end

request = function()
  counter = counter + 1
  local body = string.format('{"waybill":"B%s-%d","clickpost_status_code":5', prefix, counter)
  return wrk.format("POST", "/rms/in/api/clickpost/notify",
    {["webhook_key"] = "demo-clickpost-key", ["content-type"] = "application/json"}, body)
end

-- With PACE_MS set, each connection waits that long between requests.
local pace = tonumber(os.getenv("PACE_MS") or "")
if pace then
  delay = function() return pace end
end

done = function(summary, latency, requests)
  local other = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  io.write(string.format("RESULT requests=%d rejected=%d errors=%d duration_us=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.errors.status, other, summary.duration, latency:percentile(50),
    latency:percentile(99)))
end
