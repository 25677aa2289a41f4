-- wrk script: a flood of the heaviest query the limits admit, as many
-- clients that each stay within every per-operation bound would send it
-- together, and counts the answers.
--
--   wrk -t2 -c800 -d15s --latency -s e2e/load/flood.lua http://127.0.0.1:PORT/query
--
-- The query reads a 500-group page with 20 versions of each and most of
-- their fields (estimated cost 11,010 of MAX_COST's 50,000; 5 upstream
-- calls). A 503 whose body says SERVER_OVERLOADED is shed load, counted
-- apart (shed=N in the LOAD_RESULT line), not a bad answer; any other
-- status than 200, or a 200 with "errors", is bad.

local query = '{ imageGroups(first: 500) { totalCount nodes { id groupId name description createdCount status versions(first: 20) { totalCount nodes { id name description author readme tags price sizeMB createdAt } } } } }'

-- The counters, done() and post_query are results.lua's, next to this
-- script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "results.lua")
post_query(query)

function response(status, headers, body)
   local shed = status == 503 and body ~= nil and string.find(body, '"SERVER_OVERLOADED"', 1, true) ~= nil
   record(status, body, status ~= 200 and not shed,
      status == 200 and body ~= nil and string.find(body, '"errors"', 1, true) ~= nil, shed)
end
