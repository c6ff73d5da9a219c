-- wrk script: durable charge updates through HTTP, spread over the charges listed in
-- CHARGES_FILE (one id per line), each request setting a metadata value no earlier request
-- set, so that every request appends an event. Used by benches/http_load.sh and others.
local key = os.getenv("CHARGELEDGER_KEY")
-- Several wrk processes at once (one per server) each get their own LOAD_CLIENT, so that no two
-- requests set the same value.
local client = os.getenv("LOAD_CLIENT") or "0"
local ids = {}
for line in io.lines(os.getenv("CHARGES_FILE")) do
  ids[#ids + 1] = line
end

local threads = {}
local thread_number = 0

function setup(thread)
  thread_number = thread_number + 1
  thread:set("thread_id", thread_number)
  threads[#threads + 1] = thread
end

local counter = 0
local statuses = {}

function request()
  counter = counter + 1
  local id = ids[(counter * 7919 + thread_id) % #ids + 1]
  return wrk.format("POST", "/v1/charges/" .. id, {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "metadata[load]=" .. client .. "-" .. thread_id .. "-" .. counter)
end

function response(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("p50 %.2f ms, p99 %.2f ms, %d requests, %d errors (non-2xx %d)\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
