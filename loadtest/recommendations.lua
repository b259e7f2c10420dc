-- recommendations.lua: wrk script for GET /v1/recommendations, cycling through real user ids.
--
--   RECD_USERS_FILE=users.txt wrk -t1 -c32 -d10s --latency -s loadtest/recommendations.lua http://127.0.0.1:8080
--
-- RECD_USERS_FILE: one user id per line (without it, ids "1".."943" are used: MovieLens 100K's users).
-- RECD_K: k of every request (default 10). RECD_EXTRA_QUERY: appended to every path as it is (e.g. "&search=approximate").
-- Every request picks a user at random (seeded per wrk thread, so runs repeat),
-- not ids in order: a server's caches see the same spread a real population gives.
-- At the end it prints one machine-readable line:
--   RESULT requests=N duration_us=N rps=X p50_us=N p90_us=N p99_us=N non2xx=N socket_errors=N

local users = {}
local k = os.getenv("RECD_K") or "10"
local extra_query = os.getenv("RECD_EXTRA_QUERY") or ""

local function urlencode(s)
    return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local function load_users()
    local list = {}
    local path = os.getenv("RECD_USERS_FILE")
    if path ~= nil and path ~= "" then
        local f = assert(io.open(path, "r"), "cannot open RECD_USERS_FILE " .. path)
        for line in f:lines() do
            line = line:gsub("%s+$", "")
            if line ~= "" then
                list[#list + 1] = urlencode(line)
            end
        end
        f:close()
    else
        for i = 1, 943 do
            list[#list + 1] = tostring(i)
        end
    end
    assert(#list > 0, "no user ids")
    return list
end

local thread_count = 0
function setup(thread)
    thread:set("thread_index", thread_count)
    thread_count = thread_count + 1
end

local paths = {}
local rng_state = 1

function init(args)
    users = load_users()
    -- pre-build every path once so that request() does no string work
    for i, u in ipairs(users) do
        paths[i] = "/v1/recommendations?user=" .. u .. "&k=" .. k .. extra_query
    end
    rng_state = (tonumber(thread_index) or 0) * 7919 + 12345
end

-- MINSTD (Park-Miller), exact in doubles: LuaJIT's math.random cannot be seeded per thread reproducibly
local function next_random(n)
    rng_state = (rng_state * 48271) % 2147483647
    return rng_state % n + 1
end

function request()
    return wrk.format("GET", paths[next_random(#paths)])
end

function done(summary, latency, requests)
    local seconds = summary.duration / 1e6
    io.write(string.format(
        "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
        summary.requests, summary.duration, summary.requests / seconds,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
