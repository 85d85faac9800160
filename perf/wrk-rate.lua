-- wrk script for perf/compare --rate: paces every connection so the run offers about
-- WRK_RATE requests/s in all (closed loop with think time: each connection waits
-- WRK_DELAY_MS between a response and its next request). wrk's delay() has millisecond
-- resolution, so perf/compare picks the delay from the rate and the connection count and
-- reports the rate actually reached. Latency is measured from the send, so the think time
-- is not part of it.
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")

function delay()
  return delay_ms
end
