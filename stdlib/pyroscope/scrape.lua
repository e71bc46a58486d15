--- pyroscope.scrape: scrapes pprof profiles from HTTP targets and forwards them, as Alloy's
--- pyroscope.scrape does.
-- Every target gets one scrape loop per enabled profile type (profiling_config's profile blocks:
-- memory, block, goroutine, mutex and process_cpu are on by default, as in Alloy), each at
-- scrape_interval with a stable offset (a hash of the target). A profile with `delta` (process_cpu,
-- fgprof) is asked for with ?seconds=N (scrape_interval - 1s, or delta_profiling_duration when
-- set), and its request may take that much longer than scrape_timeout. A scrape succeeds on a
-- 2xx answer whose body is a valid pprof profile (gzipped or not); the profile goes to every
-- receiver of forward_to with the target's labels: __name__ = the profile type (godeltaprof_*
-- report as memory, mutex, block), service_name (the target's, else inferred from Kubernetes or
-- Docker discovery labels, else "unspecified"), job (job_name, else the component id), instance
-- (the address), and the __ labels pyroscope.write leaves out.
local ffi_rt = require("moonwatch.ffi")
local core = require("moonwatch.native.core")
local pprof = require("moonwatch.native.pprof")
local profiles = require("moonwatch.batch.profiles")
local duration = require("moonwatch.duration")
local httpconfig = require("moonwatch.httpconfig")
local http_client = require("moonwatch.http_client")
local metrics = require("moonwatch.metrics")
local receiver = require("moonwatch.receiver")
local schema = require("moonwatch.schema")
local scheduler = require("moonwatch.scheduler")
local redact = require("moonwatch.redact")

local M = {
  name = "pyroscope.scrape",
  doc = "Scrapes pprof profiles from targets and forwards them to profiles receivers.",
}

--- The largest profile a scrape takes (bytes, as sent): a bigger one fails the scrape.
M.MAX_BODY = 64 * 1024 * 1024

-- The standard profile types: name, default path, enabled, delta (Alloy's DefaultProfilingConfig).
local PROFILES = {
  { "memory", "/debug/pprof/allocs", true, false },
  { "block", "/debug/pprof/block", true, false },
  { "goroutine", "/debug/pprof/goroutine", true, false },
  { "mutex", "/debug/pprof/mutex", true, false },
  { "process_cpu", "/debug/pprof/profile", true, true },
  { "fgprof", "/debug/fgprof", false, true },
  { "godeltaprof_memory", "/debug/pprof/delta_heap", false, false },
  { "godeltaprof_mutex", "/debug/pprof/delta_mutex", false, false },
  { "godeltaprof_block", "/debug/pprof/delta_block", false, false },
}
-- godeltaprof was used: not user visible (Alloy's NewTarget)
local REPORTED_AS = { godeltaprof_memory = "memory", godeltaprof_block = "block", godeltaprof_mutex = "mutex" }
-- Cumulative profiles sent as deltas, as Alloy's deltaAppender (but those of godeltaprof, deltas
-- already): these sample types minus the last scrape's; the first scrape is not sent, the others
-- with __delta__ = "false" (Pyroscope computes no delta of its own then: it would for memory's
-- alloc_* only, and mutex and block would show totals since the target started)
local CONTENTION = { { "contentions", "count" }, { "delay", "nanoseconds" } }
M.DELTA_TYPES = { memory = { { "alloc_objects", "count" }, { "alloc_space", "bytes" } }, mutex = CONTENTION,
  block = CONTENTION }

local function profile_schema(path, enabled, delta)
  return { args = {
    enabled = { type = "bool", default = enabled, doc = "Whether to scrape this profile type." },
    path = { type = "string", default = path, doc = "The path of the profile on the target." },
    delta = { type = "bool", default = delta,
      doc = "Whether the profile is a delta taken over ?seconds=N (scrape_interval - 1s, or delta_profiling_duration)." },
  } }
end

local CUSTOM = { args = {
  name = { type = "string", required = true, doc = "The profile type (the __name__ label); Alloy's block label." },
  enabled = { type = "bool", required = true, doc = "Whether to scrape this profile type." },
  path = { type = "string", required = true, doc = "The path of the profile on the target." },
  delta = { type = "bool", default = false, doc = "Whether the profile is a delta taken over ?seconds=N." },
} }

local PROFILE_ARGS = {
  custom = { type = "block", repeated = true, default = {}, schema = CUSTOM,
    doc = "Other profile types: profile.custom \"name\" { enabled, path, delta } in Alloy." },
}
for _, p in ipairs(PROFILES) do
  PROFILE_ARGS[p[1]] = { type = "block", schema = profile_schema(p[2], p[3], p[4]),
    doc = string.format("profile.%s (default path %s, %s%s).", p[1], p[2], p[3] and "enabled" or "disabled",
      p[4] and ", delta" or "") }
end

M.args = {
  targets = { type = "targets", required = true, doc = "List of targets to scrape." },
  forward_to = { type = "profile_receivers", required = true, doc = "List of receivers to send scraped profiles to." },
  job_name = { type = "string", doc = "The job label (default: the component id)." },
  params = { type = "map", of = { type = "list", of = { type = "string" }, single = true }, default = {},
    doc = "A set of query parameters (map of name to list of values)." },
  scrape_interval = { type = "duration", default = "15s", positive = true, doc = "How frequently to scrape the targets." },
  scrape_timeout = { type = "duration", default = "10s", positive = true,
    doc = "The timeout of a scrape (a delta profile's request may take scrape_interval - 1s more)." },
  delta_profiling_duration = { type = "duration", default = "14s", positive = true,
    doc = "The duration of a delta profile (the seconds parameter) when not the default: scrape_interval - 1s." },
  scheme = { type = "string", default = "http", enum = { "http", "https" }, doc = "The URL scheme." },
  profiling_config = { type = "block", doc = "The profile types to scrape and their paths.", schema = { args = {
    profile = { type = "block", schema = { args = PROFILE_ARGS },
      doc = "One block per profile type: profile = { process_cpu = { enabled = true }, ... } (Alloy's profile.* blocks)." },
    path_prefix = { type = "string", doc = "A prefix of every profile path." },
  } } },
  clustering = { type = "block", optional = true,
    doc = "Accepted for Alloy compatibility; enabling clustering is an error (unsupported).",
    schema = { args = { enabled = { type = "bool", required = true,
      check = function(v)
        if v then
          return nil, "not supported yet: moonwatch does not cluster"
        end
      end, doc = "Must be false." } } } },
}
httpconfig.add_args(M.args)
M.exclusive = { httpconfig.AUTH_EXCLUSIVE }

M.exports = {}

-- The enabled profile types: { name, path, delta }, sorted by name.
local function enabled_profiles(cfg)
  local out = {}
  for _, p in ipairs(PROFILES) do
    local c = cfg.profile[p[1]]
    if c.enabled then
      out[#out + 1] = { name = p[1], path = c.path, delta = c.delta }
    end
  end
  for _, c in ipairs(cfg.profile.custom) do
    if c.enabled then
      out[#out + 1] = { name = c.name, path = c.path, delta = c.delta }
    end
  end
  table.sort(out, function(a, b)
    return a.name < b.name
  end)
  return out
end

function M.validate(args)
  local cerr = http_client.validate(httpconfig.client_config(args))
  if cerr then
    return cerr
  end
  local seen = {}
  for _, c in ipairs(args.profiling_config.profile.custom) do
    if seen[c.name] or args.profiling_config.profile[c.name] ~= nil and c.name ~= "custom" then
      return string.format("profiling_config: profile.custom %q: a profile type of that name exists already", c.name)
    end
    seen[c.name] = true
  end
  for _, p in ipairs(enabled_profiles(args.profiling_config)) do
    if p.delta then
      if args.scrape_interval < 2 then
        return "scrape_interval must be at least 2 seconds when using delta profiling"
      end
      if args.delta_profiling_duration <= 1 then
        return "delta_profiling_duration must be larger than 1 second when using delta profiling"
      end
      if args.delta_profiling_duration > args.scrape_interval - 1 then
        return "delta_profiling_duration must be at least 1 second smaller than scrape_interval when using"
          .. " delta profiling"
      end
    end
  end
end

local function component_metrics()
  return {
    scrapes = metrics.default:counter("moonwatch_pyroscope_scrape_profiles_total",
      "moonwatch: profiles scraped and forwarded, by profile type.", { "component_id", "profile" }),
    failures = metrics.default:counter("moonwatch_pyroscope_scrape_failures_total",
      "moonwatch: scrapes that failed (network, status, not a pprof profile), by profile type.",
      { "component_id", "profile" }),
    fanout = metrics.default:histogram("pyroscope_fanout_latency",
      "Write latency for sending to pyroscope profiles", { "component_id" }),
  }
end

-- The service_name Alloy infers for a target without one (inferServiceName).
local function infer_service_name(t)
  local k8s = t.__meta_kubernetes_pod_annotation_pyroscope_io_service_name
  if k8s and k8s ~= "" then
    return k8s
  end
  local ns, ctr = t.__meta_kubernetes_namespace, t.__meta_kubernetes_pod_container_name
  if ns and ns ~= "" and ctr and ctr ~= "" then
    return ns .. "/" .. ctr
  end
  for _, k in ipairs({ "__meta_docker_container_name", "__meta_dockerswarm_container_label_service_name",
    "__meta_dockerswarm_service_name" }) do
    if t[k] and t[k] ~= "" then
      return t[k]
    end
  end
  return "unspecified"
end

local url_escape = http_client.urlencode

--- The scrape targets of a discovered target, one per enabled profile type (Alloy's
--- targetsFromGroup and populateLabels): { labels (all, __ ones included), public, url, key,
--- profile, delta }, or nil, err.
function M.populate(t, args, job)
  local out = {}
  for _, p in ipairs(enabled_profiles(args.profiling_config)) do
    local lb = {}
    for k, v in pairs(t) do
      lb[k] = v
    end
    local function default(k, v)
      if (lb[k] == nil or lb[k] == "") and v and v ~= "" then
        lb[k] = v
      end
    end
    default("__profile_path__", p.path)
    default("__name__", p.name)
    default("__profile_path_prefix__", args.profiling_config.path_prefix)
    default("job", job)
    default("__scheme__", args.scheme)
    local params = {}
    for name, values in pairs(args.params) do
      params[name] = type(values) == "table" and { unpack(values) } or { values }
      if params[name][1] ~= nil then
        lb["__param_" .. name] = params[name][1]
      end
    end
    local addr = lb.__address__
    if not addr or addr == "" then
      return nil, "no address"
    end
    if not addr:find(":%d+$") and not addr:find("^%[.*%]:%d+$") then
      if lb.__scheme__ == "http" or lb.__scheme__ == "" then
        addr = addr .. ":80"
      elseif lb.__scheme__ == "https" then
        addr = addr .. ":443"
      else
        return nil, string.format("invalid scheme: %q", args.scheme)
      end
      lb.__address__ = addr
    end
    if addr:find("[/%s@]") then
      return nil, string.format("%q is not a valid hostname", addr)
    end
    for k in pairs(t) do
      if k:sub(1, 6) == "__meta" then
        lb[k] = nil
      end
    end
    default("instance", addr)
    if lb.service_name == nil or lb.service_name == "" then
      lb.service_name = infer_service_name(t)
    end
    local delta_types = not REPORTED_AS[lb.__name__] and M.DELTA_TYPES[lb.__name__] or nil
    if REPORTED_AS[lb.__name__] then
      lb.__name__ = REPORTED_AS[lb.__name__]
    end
    -- the URL: __param_ labels override the first value of a param, seconds for a delta profile
    for k, v in pairs(lb) do
      if k:sub(1, 8) == "__param_" then
        params[k:sub(9)] = params[k:sub(9)] or {}
        params[k:sub(9)][1] = v
      end
    end
    if p.delta then
      local secs = math.floor(args.scrape_interval) - 1
      if args.delta_profiling_duration ~= 14 then
        secs = math.floor(args.delta_profiling_duration)
      end
      params.seconds = params.seconds or {}
      params.seconds[#params.seconds + 1] = tostring(secs)
    end
    local query = {}
    for _, name in ipairs(schema.sorted_keys(params)) do
      for _, v in ipairs(params[name]) do
        query[#query + 1] = url_escape(name) .. "=" .. url_escape(v)
      end
    end
    local path = ((lb.__profile_path_prefix__ or "") .. "/" .. lb.__profile_path__):gsub("//+", "/")
    local url = lb.__scheme__ .. "://" .. addr .. path .. (#query > 0 and ("?" .. table.concat(query, "&")) or "")
    local public, enc = {}, {}
    for _, k in ipairs(schema.sorted_keys(lb)) do
      if k:sub(1, 2) ~= "__" then
        public[k] = lb[k]
        enc[#enc + 1] = k .. "\255" .. lb[k] .. "\255"
      end
    end
    out[#out + 1] = { labels = lb, public = public, discovered = t, url = url, profile = lb.__name__,
      delta = p.delta and params.seconds ~= nil, key = table.concat(enc) .. "\0" .. url, delta_types = delta_types }
  end
  return out
end

local Instance = {}
Instance.__index = Instance

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, loops = {}, m = component_metrics(), fanout = receiver.fanout(ctx) },
    Instance)
  self:configure(args)
  return self
end

local function stop_loop(loop)
  loop.stopped = true
  if loop.task then
    scheduler.cancel(loop.task)
    loop.task = nil
  end
end

function Instance:configure(args)
  local client, cerr = http_client.new(httpconfig.client_config(args))
  if not client then
    error(cerr, 0)
  end
  local restart = self.args and (self.args.scrape_interval ~= args.scrape_interval
    or self.args.scrape_timeout ~= args.scrape_timeout)
  self.client, self.args = client, args
  local job = args.job_name or self.ctx.id
  local wanted, errs = {}, {}
  for i, t in ipairs(args.targets) do
    local list, err = M.populate(t, args, job)
    if not list then
      errs[#errs + 1] = string.format("target %d: %s", i, err)
    else
      for _, st in ipairs(list) do
        wanted[st.key] = st
      end
    end
  end
  for key, loop in pairs(self.loops) do
    if not wanted[key] or restart then
      stop_loop(loop)
      self.loops[key] = nil
    end
  end
  for key, st in pairs(wanted) do
    local loop = self.loops[key]
    if loop then
      loop.st = st
    else
      loop = { key = key, st = st, health = "unknown" }
      self.loops[key] = loop
      loop.task = self.ctx:spawn(function()
        self:run_target(loop)
      end, "pyroscope scrape " .. redact.url(st.url))
    end
  end
  -- as Alloy: a target that cannot be made is logged (and listed in the debug info); the
  -- component's health is for its configuration
  self.target_errors = errs
  for _, e in ipairs(errs) do
    self.ctx.log:error("creating targets failed", { err = e })
  end
  local n = 0
  for _ in pairs(self.loops) do
    n = n + 1
  end
  self.ctx:set_health("healthy", string.format("%d scrape targets", n))
end

-- Delay until the target's first slot: hash(target) mod interval.
local function first_delay(key, interval, now)
  local ms = math.floor(interval * 1000)
  local offset = tonumber(core.sha256_hex(key, 8), 16) % ms
  local next_ms = ms - math.floor(now * 1000) % ms + offset
  if next_ms > ms then
    next_ms = next_ms - ms
  end
  return next_ms / 1000
end

function Instance:run_target(loop)
  local interval = self.args.scrape_interval
  self.ctx:sleep(first_delay(loop.key, interval, ffi_rt.time_now()))
  while not loop.stopped do
    local started = ffi_rt.monotonic()
    self:scrape(loop)
    self.ctx:sleep(math.max(0, interval - (ffi_rt.monotonic() - started)))
  end
end

-- One scrape: fetch, check, forward. Records the outcome in loop (debug info).
function Instance:scrape(loop)
  local st, a = loop.st, self.args
  local start, t0 = ffi_rt.time_now(), ffi_rt.monotonic()
  local timeout = a.scrape_timeout + (st.delta and (a.scrape_interval - 1) or 0)
  local resp, err = self.client:request({ url = st.url, user_agent = "moonwatch/" .. ffi_rt.version(),
    timeout = timeout, max_body = M.MAX_BODY })
  if resp and (resp.status < 200 or resp.status > 299) then
    local body = (resp.body or ""):gsub("%s+$", "")
    err = string.format("server returned HTTP status (%d) %s", resp.status, redact.excerpt(body))
  elseif resp and #(resp.body or "") == 0 then
    err = string.format("empty %s profile from %s", st.profile, redact.url(st.url))
  elseif resp then
    local ok, perr = pprof.check(resp.body)
    if not ok then
      err = "not a valid pprof profile: " .. perr
    end
  end
  local raw = resp and resp.body
  if not err and st.delta_types then
    loop.deltas = loop.deltas or pprof.delta(st.delta_types)
    local derr
    raw, derr = loop.deltas:next(raw)
    if not raw then
      err = "computing delta: " .. derr
    end
  end
  if not err and raw == "" then
    -- the first profile of a cumulative type: nothing to be a delta of yet
    loop.health, loop.last_error, loop.last_scrape, loop.last_duration = "up", nil, start, ffi_rt.monotonic() - t0
    return
  end
  if not err then
    local b = profiles.new()
    local labels = {}
    for k, v in pairs(st.labels) do
      labels[k] = v
    end
    if st.delta_types then
      labels.__delta__ = "false"
    end
    profiles.add(b, labels, raw, "")
    local f0 = ffi_rt.monotonic()
    self.fanout:send(a.forward_to, b)
    self.m.fanout:with(self.ctx.id):observe(ffi_rt.monotonic() - f0)
    self.m.scrapes:with(self.ctx.id, st.profile):inc()
  else
    self.m.failures:with(self.ctx.id, st.profile):inc()
    self.ctx.log:debug("fetch profile failed", { target = redact.url(st.url), err = err })
  end
  loop.health = err and "down" or "up"
  loop.last_error = err and redact.text(err) or nil
  loop.last_scrape = start
  loop.last_duration = ffi_rt.monotonic() - t0
end

function Instance:update(args)
  self:configure(args)
end

function Instance:stop()
  for _, loop in pairs(self.loops) do
    stop_loop(loop)
  end
  self.loops = {}
end

local iso = duration.iso8601

--- Alloy's scrape.TargetStatus of every target and profile type.
function Instance:debug_info()
  local targets = {}
  for _, loop in pairs(self.loops) do
    targets[#targets + 1] = {
      job = loop.st.labels.job,
      url = redact.url(loop.st.url),
      health = loop.health,
      labels = loop.st.discovered,
      last_error = loop.last_error or "",
      last_scrape = iso(loop.last_scrape),
      last_scrape_duration = loop.last_duration and duration.format(loop.last_duration),
    }
  end
  table.sort(targets, function(x, y)
    return x.url < y.url
  end)
  return { target_status = targets, target_errors = self.target_errors }
end

return M
