-- The release-day pull storm, as podman pulls one image (bench/storm.py runs this).
--
-- Per wrk thread, requests go out in podman's order, over and over:
--   1. GET the token (STORM_TOKEN_PATH, with STORM_AUTH as the Authorization header): a new
--      token per pull, as each `podman pull` fetches its own; skipped when STORM_TOKEN_PATH is "";
--   2. GET the manifest by tag (Accept: OCI manifest, Docker v2);
--   3. GET the config blob, then 4.-8. the layers, each with "Authorization: Bearer TOKEN".
-- STORM_BLOBS lists "digest:size" of the config and layers (all sizes distinct), STORM_MANIFEST_SIZE
-- the manifest's length: each answer is recognised by its body (a token, the manifest, or the
-- blob of that size), since wrk does not say which connection or request an answer is for. An
-- answer that is not 200 or has another length is an error. pulls = the least count of any
-- step. With one connection per thread (wrk -tN -cN) each connection walks whole pulls in
-- order and the per-pull times (clock_gettime through LuaJIT's ffi) are meaningful; with fewer
-- threads the connections of a thread share the sequence (and its latest token).
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
local manifest_size = tonumber(os.getenv("STORM_MANIFEST_SIZE"))
local accept = "application/vnd.oci.image.manifest.v1+json, " ..
               "application/vnd.docker.distribution.manifest.v2+json"
local blobs = {}        -- {digest, size}: config first, then the layers
local by_size = {}      -- size -> index in blobs
for digest, size in string.gmatch(os.getenv("STORM_BLOBS"), "(sha256:%x+):(%d+)") do
  table.insert(blobs, { digest, tonumber(size) })
  by_size[tonumber(size)] = #blobs
end
local first = (token_path == "") and 1 or 0
local last = 1 + #blobs

-- per thread state
local step = first      -- next request: 0 token, 1 manifest, 2.. blobs
local token = nil
local started = 0
counts = {}             -- answers per step
for i = 0, last do counts[i] = 0 end
errors = 0
requests_done = 0
bytes = 0
sample = ""
durations = {}

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function bearer()
  if token then return { ["Authorization"] = "Bearer " .. token } end
  return {}
end

function request()
  local s = step
  if s ~= 0 and first == 0 and not token then s = 0 end -- no token yet: get one first
  if s == step then step = (step == last) and first or step + 1 end
  if s == first then started = now() end
  if s == 0 then
    local h = {}
    if basic ~= "" then h["Authorization"] = basic end
    return wrk.format("GET", token_path, h)
  elseif s == 1 then
    local h = bearer()
    h["Accept"] = accept
    return wrk.format("GET", "/v2/" .. repo .. "/manifests/" .. tag, h)
  end
  return wrk.format("GET", "/v2/" .. repo .. "/blobs/" .. blobs[s - 1][1], bearer())
end

local function fail(what)
  errors = errors + 1
  if sample == "" then sample = what end
  step = first
end

function response(status, headers, body)
  requests_done = requests_done + 1
  local n = #body
  bytes = bytes + n
  if status ~= 200 then return fail("HTTP " .. status .. " (" .. n .. " bytes)") end
  local i = by_size[n]
  if i then
    counts[i + 1] = counts[i + 1] + 1
    if i == #blobs then table.insert(durations, now() - started) end
  elseif n == manifest_size then
    counts[1] = counts[1] + 1
  else
    local t = string.match(body, '"token"%s*:%s*"([^"]+)"') or
              string.match(body, '"access_token"%s*:%s*"([^"]+)"')
    if not t then return fail("a 200 of " .. n .. " bytes that is no token, manifest or blob") end
    token = t
    counts[0] = counts[0] + 1
  end
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("STORM_OUT"), "w")
  local e, r, b = 0, 0, 0
  local c = {}
  for i = first, last do c[i] = 0 end
  local samples, ds = {}, {}
  for _, t in ipairs(threads) do
    e = e + t:get("errors")
    r = r + t:get("requests_done")
    b = b + t:get("bytes")
    local tc = t:get("counts")
    for i = first, last do c[i] = c[i] + tc[i] end
    local s = t:get("sample")
    if s ~= "" and #samples < 5 then table.insert(samples, '"' .. s .. '"') end
    local d = t:get("durations")
    for _, v in ipairs(d) do table.insert(ds, string.format("%.4f", v)) end
  end
  local p, steps = nil, {}
  for i = first, last do
    if p == nil or c[i] < p then p = c[i] end
    table.insert(steps, tostring(c[i]))
  end
  local lat = {}
  for _, q in ipairs({ 50, 90, 99 }) do
    table.insert(lat, string.format('"%d": %.3f', q, latency:percentile(q) / 1000.0))
  end
  out:write(string.format(
    '{"pulls": %d, "errors": %d, "requests": %d, "bytes": %d, "wrk_requests": %d, ' ..
    '"duration_us": %d, "socket_errors": %d, "timeouts": %d, "non2xx": %d, ' ..
    '"step_counts": [%s], "request_ms": {%s}, "samples": [%s], "pull_seconds": [%s]}\n',
    p, e, r, b, summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, summary.errors.status, table.concat(steps, ", "),
    table.concat(lat, ", "), table.concat(samples, ", "), table.concat(ds, ",")))
  out:close()
end
