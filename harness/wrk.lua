-- wrk's side of harness/tools.py: the requests (a method, a bearer token, a JSON body, the paths
-- to cycle through) and the summary as one JSON line that harness/tools.py parses.
--   wrk ... -s harness/wrk.lua http://HOST:PORT -- METHOD TOKEN BODY PATH [PATH ...]
-- BODY "" sends none, TOKEN "" no Authorization header. The requests are built once per thread
-- in init(), so request() costs a table lookup, not a format per call.

local prepared, next_index = {}, 0

function init(args)
  local method, token, body = args[1], args[2], args[3]
  local headers = {}
  if token ~= "" then headers["Authorization"] = "Bearer " .. token end
  if body == "" then
    body = nil
  else
    headers["Content-Type"] = "application/json"
  end
  for i = 4, #args do
    prepared[#prepared + 1] = wrk.format(method, args[i], headers, body)
  end
end

function request()
  next_index = next_index % #prepared + 1
  return prepared[next_index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
