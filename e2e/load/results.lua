-- Shared by the wrk scripts here (each loads it with dofile): the
-- per-thread counters of bad answers and the one machine-readable line
-- done() prints,
--
--   LOAD_RESULT requests=N responses=N non200=N errors=N shed=N socket_errors=N duration_us=N p50_us=N p90_us=N p99_us=N mean_us=N max_us=N
--
-- which e2e/load/run.sh reads (the same histogram as wrk's --latency
-- table), followed by LOAD_FIRST_BAD and the first bad answer, if any.

-- post_query makes every request a POST of query (which must hold no quote
-- or backslash: it goes into the JSON body as it is) to the URL wrk was
-- given, asking for application/json.
function post_query(query)
   wrk.method = "POST"
   wrk.body = '{"query":"' .. query .. '"}'
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Accept"] = "application/json"
end

-- Each wrk thread runs its own Lua state; setup() keeps the threads so that
-- done() can add up their counters.
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   responses = 0
   non200 = 0
   errors = 0
   shed = 0
   first_bad = ""
end

-- record counts one answer: bad_status and bad_body say whether it counts
-- as a non-200 answer and as a bad body, was_shed whether the server
-- refused it as overloaded (a 503 flood.lua expects).
function record(status, body, bad_status, bad_body, was_shed)
   responses = responses + 1
   if was_shed then
      shed = shed + 1
   end
   if bad_status then
      non200 = non200 + 1
   end
   if bad_body then
      errors = errors + 1
   end
   if (bad_status or bad_body) and first_bad == "" then
      first_bad = status .. " " .. string.sub(body or "", 1, 300)
   end
end

function done(summary, latency, requests)
   local n, bad_status, bad_body, n_shed, sample = 0, 0, 0, 0, ""
   for _, t in ipairs(threads) do
      n = n + t:get("responses")
      n_shed = n_shed + t:get("shed")
      bad_status = bad_status + t:get("non200")
      bad_body = bad_body + t:get("errors")
      local s = t:get("first_bad")
      if sample == "" and s ~= nil then sample = s end
   end
   local e = summary.errors
   io.write(string.format(
      "LOAD_RESULT requests=%d responses=%d non200=%d errors=%d shed=%d " ..
      "socket_errors=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d " ..
      "mean_us=%.0f max_us=%d\n",
      summary.requests, n, bad_status, bad_body, n_shed,
      e.connect + e.read + e.write + e.timeout,
      summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.mean, latency.max))
   if sample ~= "" then
      io.write("LOAD_FIRST_BAD " .. sample .. "\n")
   end
end
