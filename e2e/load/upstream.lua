-- wrk script: replays the upstream call behind the reference operation
-- straight to the upstream, and counts bad answers.
--
--   sandbox -print-request >request.form
--   UPSTREAM_REQUEST_FILE=request.form wrk -t2 -c32 -d15s --latency \
--     -s e2e/load/upstream.lua 'http://127.0.0.1:PORT/?Action=DescribeCommunityImages'
--
-- The body is the signed form that upstream/sandbox/cmd/sandbox -print-request
-- prints (DescribeCommunityImages, Offset=0, Limit=20), read from the file
-- UPSTREAM_REQUEST_FILE names; the sandbox checks no timestamp, so it can be
-- replayed. A status other than 200, or a body without "RetCode":0, counts
-- as bad. done() prints the same LOAD_RESULT line as reference.lua (errors
-- counts the bodies without "RetCode":0), which e2e/load/run.sh reads.

local path = os.getenv("UPSTREAM_REQUEST_FILE")
if path == nil or path == "" then
   error("upstream.lua: set UPSTREAM_REQUEST_FILE to the file holding the signed form body")
end
local f = assert(io.open(path, "rb"))
local form = f:read("*a"):gsub("%s+$", "")
f:close()
if form == "" then
   error("upstream.lua: " .. path .. " is empty")
end

wrk.method = "POST"
wrk.body = form
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

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
   elseif body == nil or not string.find(body, '"RetCode":0', 1, true) then
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
