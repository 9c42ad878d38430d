-- wrk script: the writes of bench/writes.py. BENCH_MODE=subject: POST /v1/subjects with a
-- new e-mail address each time; BENCH_MODE=consent: POST /v1/subjects/{id}/consents for a
-- random seeded subject (an explicit SMS-offers consent). Prints latency as JSON.
local ids = {}
local key = os.getenv("BENCH_KEY") or ""
local mode = os.getenv("BENCH_MODE") or "subject"
local counter = 0
local tag = ""

function setup(thread)
  thread:set("tag", tostring(math.random(1, 1000000000)))
end

function init(args)
  if mode == "consent" then
    for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  tag = tag .. tostring(math.random(1, 1000000000))
end

local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. key,
}

function request()
  counter = counter + 1
  if mode == "consent" then
    local id = ids[math.random(#ids)]
    local body = '{"purpose":"offers.sms","evidence":{"touchpoint":"hotline.inbound",'
      .. '"method":"recorded_call","notice_version":"2026-10","language":"de","explicit":true}}'
    return wrk.format("POST", "/v1/subjects/" .. id .. "/consents", headers, body)
  end
  local body = '{"name":"Bench Person","email":"w' .. tag .. "-" .. counter .. '@example.org"}'
  return wrk.format("POST", "/v1/subjects", headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'WRKJSON {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"errors":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
