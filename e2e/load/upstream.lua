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

-- The counters and done() are results.lua's, next to this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "results.lua")

function response(status, headers, body)
   record(status, body, status ~= 200,
      status == 200 and (body == nil or not string.find(body, '"RetCode":0', 1, true)))
end
