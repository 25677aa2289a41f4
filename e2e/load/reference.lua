-- wrk script: POSTs the reference operation to /query and counts bad answers.
--
--   wrk -t2 -c32 -d15s --latency -s e2e/load/reference.lua http://127.0.0.1:PORT/query
--
-- Every response is checked: a status other than 200, or a body holding an
-- "errors" entry, counts as bad. done() (results.lua) prints one line,
--
--   LOAD_RESULT requests=N non200=N errors=N p50_us=N p90_us=N p99_us=N ...
--
-- which e2e/load/run.sh reads (the same histogram as wrk's --latency table).

-- The reference operation (see e2e/load/README.md). It holds no quote or
-- backslash, so it goes into the JSON body as it is.
local query = '{ imageGroups(first: 20) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { groupId name favoritesCount status useTime versions { totalCount nodes { imageId name } } latestVersion { imageId name publishedAt } } } } }'

-- The counters, done() and post_query are results.lua's, next to this
-- script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "results.lua")
post_query(query)

function response(status, headers, body)
   record(status, body, status ~= 200,
      body ~= nil and string.find(body, '"errors"', 1, true) ~= nil)
end
