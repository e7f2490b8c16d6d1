-- The release-day pull storm, as podman pulls one image (bench/storm.py runs this).
--
-- Run wrk with as many threads as connections (-tN -cN): wrk keeps one Lua state per thread
-- and request()/response() do not say which connection they serve, so one connection per
-- thread is what lets each client walk its own pull:
--   1. GET the token (STORM_TOKEN_PATH, with STORM_AUTH as the Authorization header) -- a
--      new token per pull, as each `podman pull` does; skipped when STORM_TOKEN_PATH is "";
--   2. GET the manifest by tag (Accept: OCI manifest, Docker v2), digests and sizes read from it;
--   3. GET the config blob, then 4.-8. the layers, each with "Authorization: Bearer TOKEN".
-- A pull counts when its last layer arrives with status 200 and the manifest's size; any other
-- answer is an error (kept, with a sample) and the client starts a new pull.
-- Per-pull times come from clock_gettime through LuaJIT's ffi.
-- Results: done() writes one JSON object to STORM_OUT.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } storm_timespec;
int clock_gettime(int clk_id, storm_timespec *tp);
]]
local ts = ffi.new("storm_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local repo = os.getenv("STORM_REPO")
local tag = os.getenv("STORM_TAG")
local token_path = os.getenv("STORM_TOKEN_PATH") or ""
local basic = os.getenv("STORM_AUTH") or ""
local accept = "application/vnd.oci.image.manifest.v1+json, " ..
               "application/vnd.docker.distribution.manifest.v2+json"

-- per thread (= per connection) state
local step = 0          -- 0 token, 1 manifest, 2 config, 3.. layers
local token = nil
local blobs = {}        -- {digest, size}: config first, then the layers
local started = 0
pulls = 0
errors = 0
requests_done = 0
bytes = 0
sample = ""
durations = {}

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function begin_pull()
  started = now()
  step = (token_path == "") and 1 or 0
  token = nil
end

function init(args)
  begin_pull()
end

local function bearer()
  if token then return { ["Authorization"] = "Bearer " .. token } end
  return {}
end

function request()
  if step == 0 then
    local h = {}
    if basic ~= "" then h["Authorization"] = basic end
    return wrk.format("GET", token_path, h)
  elseif step == 1 then
    local h = bearer()
    h["Accept"] = accept
    return wrk.format("GET", "/v2/" .. repo .. "/manifests/" .. tag, h)
  else
    return wrk.format("GET", "/v2/" .. repo .. "/blobs/" .. blobs[step - 1][1], bearer())
  end
end

local function fail(what, status)
  errors = errors + 1
  if sample == "" then sample = what .. ": HTTP " .. tostring(status) end
  begin_pull()
end

function response(status, headers, body)
  requests_done = requests_done + 1
  bytes = bytes + #body
  if status ~= 200 then return fail("step " .. step, status) end
  if step == 0 then
    token = string.match(body, '"token"%s*:%s*"([^"]+)"') or
            string.match(body, '"access_token"%s*:%s*"([^"]+)"')
    if not token then return fail("token without a token", status) end
    step = 1
  elseif step == 1 then
    blobs = {}
    for desc in string.gmatch(body, "{[^{}]*}") do
      local digest = string.match(desc, '"digest"%s*:%s*"(sha256:%x+)"')
      local size = string.match(desc, '"size"%s*:%s*(%d+)')
      if digest and size then table.insert(blobs, { digest, tonumber(size) }) end
    end
    if #blobs < 2 then return fail("manifest without blobs", status) end
    step = 2
  else
    local want = blobs[step - 1][2]
    if #body ~= want then return fail("blob of " .. #body .. " bytes, not " .. want, status) end
    if step - 1 == #blobs then
      pulls = pulls + 1
      table.insert(durations, now() - started)
      begin_pull()
    else
      step = step + 1
    end
  end
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("STORM_OUT"), "w")
  local p, e, r, b = 0, 0, 0, 0
  local samples, ds = {}, {}
  for _, t in ipairs(threads) do
    p = p + t:get("pulls")
    e = e + t:get("errors")
    r = r + t:get("requests_done")
    b = b + t:get("bytes")
    local s = t:get("sample")
    if s ~= "" and #samples < 5 then table.insert(samples, '"' .. s .. '"') end
    local d = t:get("durations")
    for _, v in ipairs(d) do table.insert(ds, string.format("%.4f", v)) end
  end
  local lat = {}
  for _, q in ipairs({ 50, 90, 99 }) do
    table.insert(lat, string.format('"%d": %.3f', q, latency:percentile(q) / 1000.0))
  end
  out:write(string.format(
    '{"pulls": %d, "errors": %d, "requests": %d, "bytes": %d, "wrk_requests": %d, ' ..
    '"duration_us": %d, "socket_errors": %d, "timeouts": %d, "non2xx": %d, ' ..
    '"request_ms": {%s}, "samples": [%s], "pull_seconds": [%s]}\n',
    p, e, r, b, summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, summary.errors.status,
    table.concat(lat, ", "), table.concat(samples, ", "), table.concat(ds, ",")))
  out:close()
end
