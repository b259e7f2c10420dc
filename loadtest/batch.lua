-- batch.lua: wrk script for POST /v1/recommendations:batch, RECD_BATCH random users per request (used by bench/serve_scale).
--
--   RECD_USERS_FILE=users.txt RECD_BATCH=32 wrk -t1 -c2 -d10s --latency -s loadtest/batch.lua http://127.0.0.1:8080
--
-- RECD_USERS_FILE: one user id per line. RECD_BATCH: entries per request (default 32). RECD_K: k of every entry
-- (default 10). RECD_SEARCH: when set, every entry's "search" (exact or approximate). Users are drawn at random
-- (MINSTD, seeded per wrk thread), as in recommendations.lua. Each answer's entries that are errors are counted.
-- At the end it prints one machine-readable line in the format of recommendations.lua, counted in entries (users
-- answered), with the HTTP figures beside them:
--   RESULT requests=ENTRIES duration_us=N rps=ENTRIES_PER_S p50_us=N p90_us=N p99_us=N non2xx=N socket_errors=N
--          http_requests=N batch=B entry_errors=N
-- p50/p90/p99 are per HTTP request (a whole batch); non2xx counts HTTP answers, entry_errors the error entries.

local batch = tonumber(os.getenv("RECD_BATCH") or "32")
local k = tonumber(os.getenv("RECD_K") or "10")
local search = os.getenv("RECD_SEARCH")
local entries = {}
local rng_state = 1

local function json_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

local thread_count = 0
local threads = {}
function setup(thread)
    thread:set("thread_index", thread_count)
    thread_count = thread_count + 1
    threads[#threads + 1] = thread
end

function init(args)
    local path = assert(os.getenv("RECD_USERS_FILE"), "RECD_USERS_FILE is required")
    local f = assert(io.open(path, "r"), "cannot open RECD_USERS_FILE " .. path)
    local extra = search and (',"search":' .. json_string(search)) or ""
    for line in f:lines() do
        line = line:gsub("%s+$", "")
        if line ~= "" then
            entries[#entries + 1] = '{"user":' .. json_string(line) .. ',"k":' .. k .. extra .. '}'
        end
    end
    f:close()
    assert(#entries > 0, "no user ids")
    rng_state = (tonumber(thread_index) or 0) * 7919 + 12345
    entry_errors = 0
end

local function next_random(n)
    rng_state = (rng_state * 48271) % 2147483647
    return rng_state % n + 1
end

function request()
    local parts = {}
    for i = 1, batch do
        parts[i] = entries[next_random(#entries)]
    end
    return wrk.format("POST", "/v1/recommendations:batch", {["Content-Type"] = "application/json"},
        '{"requests":[' .. table.concat(parts, ",") .. ']}')
end

function response(status, headers, body)
    if status == 200 then
        local _, n = body:gsub('"error":', "")
        entry_errors = entry_errors + n
    end
end

function done(summary, latency, requests)
    local errors = 0
    for _, t in ipairs(threads) do
        errors = errors + (tonumber(t:get("entry_errors")) or 0)
    end
    local seconds = summary.duration / 1e6
    io.write(string.format(
        "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d non2xx=%d socket_errors=%d " ..
        "http_requests=%d batch=%d entry_errors=%d\n",
        summary.requests * batch, summary.duration, summary.requests * batch / seconds,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        summary.requests, batch, errors))
end
