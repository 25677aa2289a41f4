-- wrk script: reads 140 distinct catalogue pages, the way many frontends
-- browsing the catalogue would, and counts bad answers.
--
--   wrk -t2 -c32 -d15s --latency -s e2e/load/pages.lua http://127.0.0.1:PORT/query
--
-- The pages are the reference operation's selection with `first` from 11
-- to 30 under each of 7 orders (none, and PUBLISHED_AT, FAVORITES and
-- USAGE, each ascending and descending): 20 × 7 = 140 distinct upstream
-- requests. Each thread walks the list, one page a request, from its own
-- starting point, so that the requests spread over the pages. A status other than 200, or
-- a body holding an "errors" entry, counts as bad; done() (results.lua)
-- prints the LOAD_RESULT line e2e/load/run.sh reads.

local orders = { "" }
for _, field in ipairs({ "PUBLISHED_AT", "FAVORITES", "USAGE" }) do
   for _, dir in ipairs({ "ASC", "DESC" }) do
      table.insert(orders, ", orderBy: {field: " .. field .. ", direction: " .. dir .. "}")
   end
end

local bodies = {}
for first = 11, 30 do
   for _, order in ipairs(orders) do
      table.insert(bodies, '{"query":"{ imageGroups(first: ' .. first .. order ..
         ') { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { groupId name favoritesCount status useTime versions { totalCount nodes { imageId name } } latestVersion { imageId name publishedAt } } } } }"}')
   end
end

local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
local next_page = 0

-- The counters and done() are results.lua's, next to this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "results.lua")

local base_setup = setup
local started = 0
function setup(thread)
   base_setup(thread)
   thread:set("first_page", (started * 67) % #bodies)
   started = started + 1
end

-- The requests, formatted once per thread: building one per request would
-- make garbage, and wrk's Lua collector would stall the thread's
-- connections, which the latencies would then count.
local requests = {}

local base_init = init
function init(args)
   base_init(args)
   next_page = first_page or 0
   for i, body in ipairs(bodies) do
      requests[i] = wrk.format("POST", nil, headers, body)
   end
end

function request()
   next_page = next_page % #requests + 1
   return requests[next_page]
end

function response(status, headers, body)
   record(status, body, status ~= 200,
      body ~= nil and string.find(body, '"errors"', 1, true) ~= nil)
end
