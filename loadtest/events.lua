-- events.lua: wrk script for POST /v1/events, one click per request for a random user and item (used by bench/realtime).
--
--   RECD_USERS_FILE=users.txt RECD_ITEMS_FILE=items.txt wrk -t1 -c16 -d10s --latency -s loadtest/events.lua http://127.0.0.1:8080
--
-- Prints one machine-readable line at the end:
--   RESULT requests=N duration_us=N rps=X p50_us=N p99_us=N non2xx=N socket_errors=N

local function lines(path)
    local list = {}
    local f = assert(io.open(path, "r"), "cannot open " .. path)
    for line in f:lines() do
        line = line:gsub("%s+$", "")
        if line ~= "" then
            list[#list + 1] = line
        end
    end
    f:close()
    return list
end

local users, items

function init(args)
    users = lines(os.getenv("RECD_USERS_FILE"))
    items = lines(os.getenv("RECD_ITEMS_FILE"))
    math.randomseed(os.time())
end

function request()
    local body = string.format('{"user":"%s","item":"%s","type":"click"}', users[math.random(#users)], items[math.random(#items)])
    return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
    local non2xx = summary.errors.status
    local sock = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
    io.write(string.format("RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
        summary.requests, summary.duration, summary.requests / (summary.duration / 1e6), latency:percentile(50),
        latency:percentile(99), non2xx, sock))
end
