-- wrk script: every request is a new Clickpost scan (a new AWB), so each one is a new event to
-- claim, queue and deliver, not a duplicate. With BODIES=rejected, each body is instead cut short
-- (not JSON, and new each time): authenticated, quarantined as a new body and answered 400.
local counter = 0
local prefix
local rejected = os.getenv("BODIES") == "rejected"

init = function(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  prefix = tostring(math.random(1, 1e9))
end

request = function()
  counter = counter + 1
  local body = string.format(
    '{"waybill":"B%s-%d","clickpost_status_code":5,"timestamp":"2023-02-07T18:09:00Z","additional":{"order_id":"O%d"}}',
    prefix, counter, counter)
  if rejected then
    body = string.sub(body, 1, -2)
  end
  return wrk.format("POST", "/rms/in/api/clickpost/notify",
    {["webhook_key"] = "demo-clickpost-key", ["content-type"] = "application/json"}, body)
end

-- With PACE_MS set, each connection waits that long between requests: a steady rate of about
-- connections * 1000 / PACE_MS requests per second instead of as fast as possible.
local pace = tonumber(os.getenv("PACE_MS") or "")
if pace then
  delay = function() return pace end
end

-- errors: every answer that is not 2xx and every socket error; status: the non-2xx answers alone.
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d errors=%d status=%d duration_us=%d p50_us=%d p99_us=%d\n",
    summary.requests, errors, summary.errors.status, summary.duration, latency:percentile(50),
    latency:percentile(99)))
end
