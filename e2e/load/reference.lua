-- wrk script: POSTs the reference operation to /query and counts bad answers.
--
--   wrk -t2 -c32 -d15s --latency -s e2e/load/reference.lua http://127.0.0.1:PORT/query
--
-- Every response is checked: a status other than 200, or a body holding an
-- "errors" entry, counts as bad. done() prints one machine-readable line,
--
--   LOAD_RESULT requests=N non200=N errors=N p50_us=N p90_us=N p99_us=N ...
--
-- which e2e/load/run.sh reads (the same histogram as wrk's --latency table).

-- The reference operation (see e2e/load/README.md). It holds no quote or
-- backslash, so it goes into the JSON body as it is.
local query = '{ imageGroups(first: 20) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { groupId name favoritesCount status useTime versions { totalCount nodes { imageId name } } latestVersion { imageId name publishedAt } } } } }'

wrk.method = "POST"
wrk.body = '{"query":"' .. query .. '"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"

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
   first_bad = ""
end

function response(status, headers, body)
   responses = responses + 1
   local bad = false
   if status ~= 200 then
      non200 = non200 + 1
      bad = true
   end
   if body ~= nil and string.find(body, '"errors"', 1, true) then
      errors = errors + 1
      bad = true
   end
   if bad and first_bad == "" then
      first_bad = status .. " " .. string.sub(body or "", 1, 300)
   end
end

function done(summary, latency, requests)
   local n, bad_status, bad_body, sample = 0, 0, 0, ""
   for _, t in ipairs(threads) do
      n = n + t:get("responses")
      bad_status = bad_status + t:get("non200")
      bad_body = bad_body + t:get("errors")
      local s = t:get("first_bad")
      if sample == "" and s ~= nil then sample = s end
   end
   local e = summary.errors
   io.write(string.format(
      "LOAD_RESULT requests=%d responses=%d non200=%d errors=%d " ..
      "socket_errors=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d " ..
      "mean_us=%.0f max_us=%d\n",
      summary.requests, n, bad_status, bad_body,
      e.connect + e.read + e.write + e.timeout,
      summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.mean, latency.max))
   if sample ~= "" then
      io.write("LOAD_FIRST_BAD " .. sample .. "\n")
   end
end
