--- prometheus.scrape: scrapes targets and forwards the samples, as Alloy's
--- prometheus.scrape and Prometheus's scrape loop do.
-- Each target is scraped at its interval with a stable offset inside the
-- interval (spread by a hash of the target, as Prometheus does). The body is
-- parsed in C into a batch through the target's scrape cache (a steady-state
-- scrape only hashes each line and parses its value); the batch and the report
-- series (up, scrape_duration_seconds, ...) go to every receiver in forward_to;
-- every scrape, failed or not, writes all its report series (they bypass the
-- label limits, as in Prometheus). Series that disappear, and all series of a
-- failed scrape, get Prometheus's staleness marker once. A target removed while
-- the component runs gets its end-of-run staleness markers as Prometheus writes
-- them: two intervals and 10% later, unless it came back meanwhile; stopping the
-- component or moonwatch writes none (a restart carries the series on).
-- Problems of one target (no address, over target_limit) are the target's: its
-- health and last error in the debug info, up 0, metrics; the component's health
-- is for its configuration. Targets on the in-memory address (exporter
-- components) are collected by a direct call, without a socket.
local ffi_rt = require("moonwatch.ffi")
local tracing = require("moonwatch.tracing")
local batch = require("moonwatch.batch")
local samples_batch = require("moonwatch.batch.samples")
local core = require("moonwatch.native.core")
local native_scrape = require("moonwatch.native.scrape")
local duration = require("moonwatch.duration")
local inmemory = require("moonwatch.inmemory")
local metrics = require("moonwatch.metrics")
local schema = require("moonwatch.schema")
local receiver = require("moonwatch.receiver")
local httpconfig = require("moonwatch.httpconfig")
local scheduler = require("moonwatch.scheduler")
local redact = require("moonwatch.redact")

local M = {
  name = "prometheus.scrape",
  doc = "Scrapes Prometheus metrics from targets and forwards them to receivers.",
}

local PROTOCOLS = {
  PrometheusProto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
  ["OpenMetricsText1.0.0"] = "application/openmetrics-text;version=1.0.0",
  ["OpenMetricsText0.0.1"] = "application/openmetrics-text;version=0.0.1",
  ["PrometheusText1.0.0"] = "text/plain;version=1.0.0",
  ["PrometheusText0.0.4"] = "text/plain;version=0.0.4",
}
-- The protocols whose media type takes an escaping parameter (Prometheus's acceptHeader).
local ESCAPING_PROTOCOLS = { ["OpenMetricsText1.0.0"] = true, ["PrometheusText1.0.0"] = true }
local VALIDATION_SCHEMES = { "legacy", "utf8" }
local ESCAPING_SCHEMES = { "allow-utf-8", "underscores", "dots", "values" }
local PROTOCOL_NAMES = { "PrometheusProto", "OpenMetricsText1.0.0", "OpenMetricsText0.0.1", "PrometheusText1.0.0",
  "PrometheusText0.0.4" }
-- The default scrape_protocols; with scrape_native_histograms, every protocol, PrometheusProto first
-- (Alloy's documented default then); what the deprecated enable_protobuf_negotiation sets.
local DEFAULT_PROTOCOLS = { "OpenMetricsText1.0.0", "OpenMetricsText0.0.1", "PrometheusText1.0.0", "PrometheusText0.0.4" }
local NATIVE_PROTOCOLS = PROTOCOL_NAMES
local NEGOTIATION_PROTOCOLS = { "PrometheusProto", "OpenMetricsText1.0.0", "OpenMetricsText0.0.1", "PrometheusText0.0.4" }

local function check_protocol(p)
  if not PROTOCOLS[p] then
    return string.format("unknown scrape protocol %q (one of %s)", p, table.concat(PROTOCOL_NAMES, ", "))
  end
end

M.args = {
  targets = { type = "targets", required = true, doc = "List of targets to scrape." },
  forward_to = { type = "receivers", required = true, doc = "List of receivers to send scraped metrics to." },
  job_name = { type = "string", doc = "The value to use for the job label if not already set (default: the component id)." },
  extra_metrics = { type = "bool", default = false, doc = "Whether extra metrics should be generated for scrape targets." },
  honor_labels = { type = "bool", default = false, doc = "Indicator whether the scraped metrics should remain unmodified." },
  honor_timestamps = { type = "bool", default = true, doc = "Indicator whether the scraped timestamps should be respected." },
  track_timestamps_staleness = { type = "bool", default = false,
    doc = "Indicator whether to track the staleness of the scraped timestamps." },
  params = { type = "map", of = { type = "list", of = { type = "string" }, single = true }, default = {},
    doc = "A set of query parameters (map of name to list of values)." },
  scrape_interval = { type = "duration", default = "60s", positive = true, doc = "How frequently to scrape the targets." },
  scrape_timeout = { type = "duration", default = "10s", positive = true, doc = "The timeout for scraping targets." },
  scrape_protocols = { type = "list", of = { type = "string", check = check_protocol },
    doc = "The protocols to negotiate during a scrape, in order of preference (default: OpenMetricsText1.0.0, "
      .. "OpenMetricsText0.0.1, PrometheusText1.0.0, PrometheusText0.0.4; with scrape_native_histograms, "
      .. "PrometheusProto first)." },
  scrape_fallback_protocol = { type = "string", default = "PrometheusText0.0.4", check = check_protocol,
    doc = "The protocol used when the target sends no valid Content-Type." },
  enable_protobuf_negotiation = { type = "bool", default = false,
    doc = "Deprecated: use scrape_protocols instead (true means PrometheusProto, OpenMetricsText1.0.0, "
      .. "OpenMetricsText0.0.1, PrometheusText0.0.4)." },
  scrape_native_histograms = { type = "bool", default = false,
    doc = "Whether to scrape native histograms (they come only in the PrometheusProto format)." },
  scrape_classic_histograms = { type = "bool", default = false,
    doc = "Whether to scrape a classic histogram that is also exposed as a native histogram." },
  native_histogram_bucket_limit = { type = "uint", default = 0,
    doc = "Native histogram buckets are merged (lower schema) to stay within this limit; a histogram still over "
      .. "it at schema -4 fails the scrape. 0: disabled." },
  native_histogram_min_bucket_factor = { type = "number", default = 0,
    doc = "If the growth from one bucket to the next is smaller than this, buckets are merged. 0: disabled." },
  convert_classic_histograms_to_nhcb = { type = "bool", default = false,
    doc = "Whether to convert classic histograms to native histograms with custom buckets (NHCB; schema -53); "
      .. "their classic series are kept too with scrape_classic_histograms." },
  metrics_path = { type = "string", default = "/metrics", doc = "The HTTP resource path on which to fetch metrics." },
  scheme = { type = "string", default = "http", enum = { "http", "https" }, doc = "The URL scheme." },
  body_size_limit = { type = "uint", default = 104857600,
    doc = "Uncompressed body bytes over which the scrape fails (a gzip body stops inflating there); "
      .. "default 100 MiB; 0: no limit." },
  sample_limit = { type = "uint", default = 0, doc = "More samples than this fails the scrape; 0: no limit." },
  target_limit = { type = "uint", default = 0, doc = "More targets than this fails the scrapes; 0: no limit." },
  label_limit = { type = "uint", default = 0, doc = "More labels than this fails the scrape; 0: no limit." },
  label_name_length_limit = { type = "uint", default = 0, doc = "Longer label names fail the scrape; 0: no limit." },
  label_value_length_limit = { type = "uint", default = 0, doc = "Longer label values fail the scrape; 0: no limit." },
  enable_compression = { type = "bool", default = true, doc = "Whether compression is enabled for the scrape." },
  metric_name_validation_scheme = { type = "string", default = "legacy", enum = VALIDATION_SCHEMES,
    doc = "How metric and label names are validated: \"legacy\" ([a-zA-Z_:][a-zA-Z0-9_:]*, as Prometheus 2; "
      .. "a scrape with other names fails) or \"utf8\" (any UTF-8, Prometheus 3's quoted names)." },
  metric_name_escaping_scheme = { type = "string", enum = ESCAPING_SCHEMES,
    doc = "The escaping the Accept header asks targets to apply to names outside the legacy grammar: "
      .. "\"allow-utf-8\" (none; the default with the utf8 scheme, and only allowed with it), \"underscores\" "
      .. "(the default with the legacy scheme), \"dots\" or \"values\"." },
  clustering = { type = "block", optional = true,
    doc = "Accepted for Alloy compatibility; enabling clustering is an error (unsupported).",
    schema = { args = { enabled = { type = "bool", required = true,
      check = function(v)
        if v then
          return nil, "not supported yet: moonwatch does not cluster"
        end
      end,
      doc = "Distribute targets among the cluster's peers (not supported yet: must be false)." } } } },
}

httpconfig.add_args(M.args)
M.exclusive = { httpconfig.AUTH_EXCLUSIVE }

M.validate = function(args)
  local cerr = require("moonwatch.http_client").validate(httpconfig.client_config(args))
  if cerr then
    return cerr
  end
  if args.scrape_timeout > args.scrape_interval then
    return string.format("scrape_timeout (%s) greater than scrape_interval (%s)",
      duration.format(args.scrape_timeout), duration.format(args.scrape_interval))
  end
  if args.enable_protobuf_negotiation and args.scrape_protocols then
    return "both enable_protobuf_negotiation and scrape_protocols are set, only one can be set at a time"
  end
  local seen = {}
  for _, p in ipairs(args.scrape_protocols or {}) do
    if seen[p] then
      return string.format("duplicate scrape protocol %q: make sure the scrape protocols provided are unique", p)
    end
    seen[p] = true
  end
  local factor = args.native_histogram_min_bucket_factor
  if factor < 0 or factor ~= factor then
    return "native_histogram_min_bucket_factor must not be negative"
  end
  if args.metric_name_escaping_scheme == "allow-utf-8" and args.metric_name_validation_scheme ~= "utf8" then
    return 'metric_name_escaping_scheme: cannot be "allow-utf-8" while metric_name_validation_scheme is '
      .. string.format("%q (allow-utf-8 needs \"utf8\")", args.metric_name_validation_scheme)
  end
end

--- The scrape protocols in effect: the argument, or the default (PrometheusProto first with
--- scrape_native_histograms, as Alloy documents; the deprecated enable_protobuf_negotiation's set).
local function protocols(args)
  if args.scrape_protocols then
    return args.scrape_protocols
  elseif args.enable_protobuf_negotiation then
    return NEGOTIATION_PROTOCOLS
  end
  return args.scrape_native_histograms and NATIVE_PROTOCOLS or DEFAULT_PROTOCOLS
end
M.protocols = protocols

--- The escaping scheme in effect: the argument, or the validation scheme's default.
local function escaping_scheme(args)
  return args.metric_name_escaping_scheme
    or (args.metric_name_validation_scheme == "utf8" and "allow-utf-8" or "underscores")
end
M.escaping_scheme = escaping_scheme

M.exports = {}

-- Shared component metrics (component_id label), as Alloy's.
local function component_metrics()
  local reg = metrics.default
  return {
    targets = reg:gauge("prometheus_scrape_targets_gauge", "Number of targets this component is configured to scrape.",
      { "component_id" }),
    forwarded = reg:counter("prometheus_forwarded_samples_total",
      "Total number of samples sent to downstream components.", { "component_id" }),
    fanout = reg:histogram("prometheus_fanout_latency", "Write latency for sending to direct and indirect components.",
      { "component_id" }),
    -- Prometheus's scrape pool metrics
    target_limit = reg:counter("prometheus_target_scrape_pool_exceeded_target_limit_total",
      "Total number of times scrape pools hit the target limit, during sync or config reload.", { "component_id" }),
    label_limits = reg:counter("prometheus_target_scrape_pool_exceeded_label_limits_total",
      "Total number of times scrape pools hit the label limits, during sync or config reload.", { "component_id" }),
    bucket_limit = reg:counter("prometheus_target_scrapes_exceeded_native_histogram_bucket_limit_total",
      "Total number of scrapes that hit the native histogram bucket limit and were rejected.", { "component_id" }),
    sync_failed = reg:counter("prometheus_target_sync_failed_total",
      "Total number of target sync failures.", { "component_id", "scrape_job" }),
  }
end

-- A stable 32-bit hash of a target's key (the first bytes of its SHA-256).
local function target_hash(s)
  return tonumber(core.sha256_hex(s, 8), 16)
end

local url_escape = require("moonwatch.http_client").urlencode

local function sorted_pairs(t)
  local keys = schema.sorted_keys(t)
  local i = 0
  return function()
    i = i + 1
    local k = keys[i]
    if k ~= nil then
      return k, t[k]
    end
  end
end

--- Turns a discovered target into scrape labels as Prometheus's PopulateLabels does.
--- Returns { labels = final (no __ labels), all = with __ labels, url, interval, timeout, key } or nil, err.
function M.populate(t, args, job)
  local lb = {}
  for k, v in pairs(t) do
    lb[k] = v
  end
  local defaults = {
    job = job,
    __scheme__ = args.scheme,
    __metrics_path__ = args.metrics_path,
    __scrape_interval__ = duration.format(args.scrape_interval),
    __scrape_timeout__ = duration.format(args.scrape_timeout),
  }
  for k, v in pairs(defaults) do
    if lb[k] == nil or lb[k] == "" then
      lb[k] = v
    end
  end
  for name, values in sorted_pairs(args.params or {}) do
    local v = type(values) == "table" and values[1] or values
    if v ~= nil and lb["__param_" .. name] == nil then
      lb["__param_" .. name] = tostring(v)
    end
  end
  local addr = lb.__address__
  if not addr or addr == "" then
    return nil, "no address"
  end
  if addr:find("/", 1, true) then
    return nil, string.format("%q is not a valid hostname", addr)
  end
  if lb.instance == nil or lb.instance == "" then
    lb.instance = addr
  end
  local interval, ierr = duration.parse(lb.__scrape_interval__)
  if not interval or interval <= 0 then
    return nil, "error parsing scrape interval: " .. tostring(ierr or "not positive")
  end
  local timeout, terr = duration.parse(lb.__scrape_timeout__)
  if not timeout or timeout <= 0 then
    return nil, "error parsing scrape timeout: " .. tostring(terr or "not positive")
  end
  if timeout > interval then
    return nil, string.format("scrape timeout cannot be greater than scrape interval (%q > %q)",
      lb.__scrape_timeout__, lb.__scrape_interval__)
  end
  local final, enc, query = {}, {}, {}
  for k, v in sorted_pairs(lb) do
    if k:sub(1, 8) == "__param_" then
      query[#query + 1] = url_escape(k:sub(9)) .. "=" .. url_escape(v)
    end
    if k:sub(1, 2) ~= "__" and v ~= "" then
      final[k] = v
      enc[#enc + 1] = k .. "\255" .. v .. "\255"
    end
  end
  -- further values of multi-valued params
  for name, values in sorted_pairs(args.params or {}) do
    if type(values) == "table" then
      for i = 2, #values do
        query[#query + 1] = url_escape(name) .. "=" .. url_escape(values[i])
      end
    end
  end
  local path = lb.__metrics_path__
  local url = lb.__scheme__ .. "://" .. addr .. path .. (#query > 0 and ((path:find("?", 1, true) and "&" or "?")
    .. table.concat(query, "&")) or "")
  local encoded = table.concat(enc)
  local st = {
    labels = final, discovered = t, encoded = encoded, url = url, address = addr, path = path,
    interval = interval, timeout = timeout, key = encoded .. "\0" .. url,
  }
  -- a password in the address's userinfo (user:pw@host, sent as basic auth) is a secret for as
  -- long as the target lives: masked in its instance label wherever moonwatch shows it
  redact.register_url(st, url)
  return st
end

--- The Accept header for the protocols in order of preference, as Prometheus builds it: the
--- 1.0.0 text formats carry the escaping scheme.
local function accept_header(list, escaping)
  local vals, weight = {}, 6
  for _, p in ipairs(list) do
    local esc = ESCAPING_PROTOCOLS[p] and (";escaping=" .. (escaping or "underscores")) or ""
    vals[#vals + 1] = string.format("%s%s;q=0.%d", PROTOCOLS[p], esc, weight)
    weight = weight - 1
  end
  vals[#vals + 1] = string.format("*/*;q=0.%d", weight)
  return table.concat(vals, ",")
end
M.accept_header = accept_header

local Instance = {}
Instance.__index = Instance

function M.new(ctx, args)
  -- loops: the targets scraped, by key; leaving: removed targets waiting for their end-of-run staleness
  local self = setmetatable({ ctx = ctx, loops = {}, leaving = {}, m = component_metrics(),
    fanout = receiver.fanout(ctx) }, Instance)
  self:configure(args)
  return self
end

-- Applies arguments: target diff (surviving targets keep their state; new
-- label options apply to their series at the next scrape).
function Instance:configure(args)
  local client, cerr = require("moonwatch.http_client").new(httpconfig.client_config(args))
  if not client then
    error(cerr, 0)
  end
  self.client = client
  self.args = args
  self.job = args.job_name or self.ctx.id
  self.accept = accept_header(protocols(args), escaping_scheme(args))
  local fb = args.scrape_fallback_protocol
  self.fallback = fb == "PrometheusProto" and native_scrape.FORMAT_PROTOBUF
    or fb:find("^OpenMetrics") and native_scrape.FORMAT_OPENMETRICS or native_scrape.FORMAT_TEXT
  if args.enable_protobuf_negotiation and not self.warned_negotiation then
    self.warned_negotiation = true
    self.ctx.log:warn("enable_protobuf_negotiation is deprecated and will be removed in a future major release, "
      .. "use scrape_protocols instead")
  end
  local problems, wanted, n = {}, {}, 0
  -- the validation scheme is how the target labels were checked when each target was made: a new
  -- scheme makes every target anew (no staleness markers: the same series go on)
  if self.scheme and self.scheme ~= args.metric_name_validation_scheme then
    self:stop()
  end
  self.scheme = args.metric_name_validation_scheme
  for i, t in ipairs(args.targets) do
    local st, err = M.populate(t, args, self.job)
    if st then
      if not wanted[st.key] then
        n = n + 1
      end
      wanted[st.key] = st
    else
      problems[#problems + 1] = string.format("target %d: %s", i, err)
    end
  end
  -- Prometheus's target_limit: while the targets are more than the limit, every
  -- scrape of every target fails with this error (up 0, staleness markers)
  self.limit_err = nil
  if args.target_limit > 0 and n > args.target_limit then
    self.limit_err = string.format("target_limit exceeded (number of targets: %d, limit: %d)", n, args.target_limit)
    self.m.target_limit:with(self.ctx.id):inc()
  end
  for key in pairs(self.loops) do
    if not wanted[key] then
      self:remove_target(key)
    end
  end
  for key, st in pairs(wanted) do
    local loop = self.loops[key]
    if loop then
      loop.st = st
      loop.t:set_opts(self:opts())
    else
      local err = self:add_target(key, st)
      if err then
        problems[#problems + 1] = err
      end
    end
  end
  self.target_errors = problems
  if #problems > 0 then -- as Prometheus's "Creating target failed": the target's problem, not the component's
    self.m.sync_failed:with(self.ctx.id, self.job):add(#problems)
    self.ctx.log:error("creating targets failed", { errors = table.concat(problems, "; ") })
  end
  self.m.targets:with(self.ctx.id):set(n)
  self.ctx:set_health("healthy", string.format("%d targets", n))
end

function Instance:opts()
  local a = self.args
  return {
    honor_labels = a.honor_labels,
    honor_timestamps = a.honor_timestamps,
    track_timestamps_staleness = a.track_timestamps_staleness,
    label_limit = a.label_limit,
    label_name_length_limit = a.label_name_length_limit,
    label_value_length_limit = a.label_value_length_limit,
    sample_limit = a.sample_limit,
    fallback_format = self.fallback,
    utf8_names = a.metric_name_validation_scheme == "utf8",
    native_histograms = a.scrape_native_histograms,
    classic_histograms = a.scrape_classic_histograms,
    native_bucket_limit = a.native_histogram_bucket_limit,
    native_min_bucket_factor = a.native_histogram_min_bucket_factor,
    convert_nhcb = a.convert_classic_histograms_to_nhcb,
  }
end

-- Starts scraping a target; a target removed a moment ago carries on with its
-- state (and gets no end-of-run staleness). Returns an error message if the
-- target cannot be made (bad labels).
function Instance:add_target(key, st)
  local loop = self.leaving[key]
  if loop then
    self.leaving[key] = nil
    scheduler.cancel(loop.stale_task)
    loop.stale_task, loop.st = nil, st
    loop.t:set_opts(self:opts())
  else
    local t, terr = native_scrape.target(st.encoded, self:opts())
    if not t then
      return terr
    end
    loop = { key = key, st = st, t = t, health = "unknown" }
  end
  loop.stopped = false
  self.loops[key] = loop
  loop.task = self.ctx:spawn(function()
    self:run_target(loop)
  end, "scrape " .. st.url)
end

-- Stops scraping a target (no staleness markers).
local function stop_loop(loop)
  loop.stopped = true
  if loop.task then
    scheduler.cancel(loop.task)
    loop.task = nil
  end
end

-- A target left the targets while the component runs. As Prometheus's scrape
-- loop, it may come back (a flapping discovery): its series get their
-- staleness markers only after its next two slots and 10% of an interval,
-- timestamped at the first slot (when its next scrape would have been), and
-- not at all if it comes back first or the component stops. A target never
-- scraped has no series to mark.
function Instance:remove_target(key)
  local loop = self.loops[key]
  self.loops[key] = nil
  stop_loop(loop)
  if not loop.last_scrape then
    return
  end
  self.leaving[key] = loop
  loop.stale_task = self.ctx:spawn(function()
    self:end_of_run(loop)
  end, "end-of-run staleness " .. loop.st.url)
end

function Instance:end_of_run(loop)
  local iv, now = loop.st.interval, ffi_rt.time_now()
  local slot = loop.next_at
  if slot < now then
    slot = slot + math.ceil((now - slot) / iv) * iv
  end
  -- a timer counts from the loop's cached time, which lags the clock on a busy
  -- loop: sleep again until the clock says it is due
  local due = slot + iv + iv / 10
  repeat
    self.ctx:sleep(due - now)
    now = ffi_rt.time_now()
  until now >= due or self.leaving[loop.key] ~= loop
  if self.leaving[loop.key] ~= loop then
    return
  end
  self.leaving[loop.key] = nil
  loop.stale_task = nil
  if loop.t:stale(math.floor(slot * 1000)) then
    self:forward(loop.t:batch())
    self:forward(loop.t:report_batch())
  end
  loop.t:clear()
end

-- Sends a batch to every receiver (one with only native histograms too); counts and times it.
function Instance:forward(b)
  local n = batch.len(b) + samples_batch.histogram_count(b)
  if n == 0 then
    return
  end
  local t0 = ffi_rt.monotonic()
  self.fanout:send(self.args.forward_to, b)
  self.m.forwarded:with(self.ctx.id):add(n)
  self.m.fanout:with(self.ctx.id):observe(ffi_rt.monotonic() - t0)
end

-- Delay until the target's next slot: offset = hash(target) mod interval, as Prometheus.
local function first_delay(key, interval, now)
  local ms = math.floor(interval * 1000)
  local offset = target_hash(key) % ms
  local base = ms - math.floor(now * 1000) % ms
  local next_ms = base + offset
  if next_ms > ms then
    next_ms = next_ms - ms
  end
  return next_ms / 1000
end
M.first_delay = first_delay

-- The target's scrape loop; loop.next_at is the wall time of its next slot.
function Instance:run_target(loop)
  local ctx = self.ctx
  local now = ffi_rt.time_now()
  local wait = first_delay(loop.key, loop.st.interval, now)
  loop.next_at = now + wait
  ctx:sleep(wait)
  while not loop.stopped do
    local started = ffi_rt.monotonic()
    self:scrape(loop)
    wait = math.max(0, loop.st.interval - (ffi_rt.monotonic() - started))
    loop.next_at = ffi_rt.time_now() + wait
    ctx:sleep(wait)
  end
end

-- Bytes of body parsed between two yields to the loop (~10 ms of parsing): a big
-- body never holds up the HTTP server, other scrapes or signals for long.
M.PARSE_STEP = 4 * 1024 * 1024
-- Bytes of output a gzip body's inflate makes before it yields (libdeflate takes a
-- body of up to four steps in one, at about twice zlib's speed).
M.GUNZIP_STEP = 4 * 1024 * 1024

-- Parses a body in steps, yielding to the loop between them; the scrape's
-- deadline (its start + scrape_timeout) covers the parse too. Returns ok, err.
-- A scrape cancelled midway (target or component stopped) is forgotten, as if
-- it never began. keep is the body's owner, alive until the parse ends.
function Instance:parse(loop, ptr, len, ctype, ts, deadline, keep)
  local t = loop.t
  local begun, berr = t:parse_begin(ptr, len, ctype, ts)
  if not begun then
    return false, berr
  end
  while true do
    local done, perr = t:parse_step(M.PARSE_STEP)
    if done then
      return true
    elseif done == nil then
      return false, perr
    end
    if ffi_rt.monotonic() > deadline then
      return false, t:parse_fail(string.format("context deadline exceeded (parsing the body took longer "
        .. "than the scrape timeout, %s)", duration.format(loop.st.timeout)))
    end
    local yielded, cerr = pcall(self.ctx.sleep, self.ctx, 0)
    if not yielded or loop.stopped then
      t:parse_abort()
      if not yielded then
        error(cerr, 0)
      end
      return false, "stopped"
    end
    local _ = keep
  end
end

-- Fetches the target's body: ptr, len, content_type, keepalive, or nil, err, size
-- (size -1 when the body size limit was hit, as Prometheus reports it).
function Instance:fetch(loop)
  local st, a = loop.st, self.args
  if st.address == inmemory.ADDRESS then
    local collect = inmemory.lookup(st.path)
    if not collect then
      return nil, "no exporter component serves " .. st.path, 0
    end
    local body, ctype = collect(self.accept, nil)
    if not body then
      return nil, tostring(ctype), 0
    end
    loop.source = inmemory.component_id(st.path) -- its samples count on the exporter's data-flow edge
    return body, #body, ctype, body
  end
  local limit = a.body_size_limit > 0 and a.body_size_limit or nil
  local deadline = ffi_rt.monotonic() + st.timeout
  local headers = {
    ["Accept"] = self.accept,
    ["X-Prometheus-Scrape-Timeout-Seconds"] = string.format("%g", st.timeout),
  }
  local span = loop.span
  if span.sampled and tracing.send_traceparent() then
    headers.traceparent = span:traceparent()
  end
  local resp, err = self.client:request({
    url = st.url,
    headers = headers,
    user_agent = "moonwatch/" .. ffi_rt.version(),
    timeout = st.timeout,
    max_body = limit,
    accept_gzip = a.enable_compression,
    keep_body = true,
  })
  if not resp then
    return nil, err, tostring(err):find("body size limit", 1, true) and -1 or 0
  end
  span:set("http.response.status_code", resp.status)
  if resp.status < 200 or resp.status > 299 then
    return nil, string.format("server returned HTTP status %d", resp.status), 0
  end
  local body = resp.body
  if resp.gzip then
    local raw, gerr = self:gunzip(loop, body, limit, deadline)
    body:free() -- now, not at the next GC: a target's bodies would pile up until then
    if not raw then
      return nil, gerr, tostring(gerr):find("body size limit", 1, true) and -1 or 0
    end
    body = raw
  end
  return body:ptr(), body:len(), resp.headers["content-type"], body
end

-- Inflates a gzip body in steps of about M.GUNZIP_STEP bytes of output, yielding to
-- the loop between them (a big body or a bomb inflating to body_size_limit would
-- hold every other component for up to a second otherwise); the scrape's deadline
-- covers it. Returns the inflated body, or nil, err.
function Instance:gunzip(loop, body, limit, deadline)
  local g, err = body:gunzip_stream(limit or 0)
  if not g then
    return nil, err
  end
  while true do
    local out, serr = g:step(M.GUNZIP_STEP)
    if out ~= false then
      return out, serr
    end
    if ffi_rt.monotonic() > deadline then
      g:free()
      return nil, string.format("context deadline exceeded (inflating the body took longer than the scrape "
        .. "timeout, %s)", duration.format(loop.st.timeout))
    end
    local yielded, cerr = pcall(self.ctx.sleep, self.ctx, 0)
    if not yielded then
      g:free()
      error(cerr, 0)
    elseif loop.stopped then
      g:free()
      return nil, "stopped"
    end
  end
end

function Instance:scrape(loop)
  local ts = math.floor(ffi_rt.time_now() * 1000)
  local t0 = ffi_rt.monotonic()
  local stats = loop.t.stats
  local err, size, parsed
  -- the scrape's span (tracing.NOOP unless this trace is sampled: nothing is made then)
  local span = tracing.start("prometheus.scrape", nil, tracing.CLIENT)
  loop.span = span
  local ok = not self.limit_err
  if not ok then
    err = self.limit_err
    loop.t:fail(ts)
  else
    local fetched, ptr, len, ctype, keep = pcall(self.fetch, self, loop)
    if not fetched then -- a bug (an exporter's collect raised): the scrape fails, the loop goes on
      if ptr == scheduler.CANCELLED then
        error(ptr, 0)
      end
      self.ctx.log:debug("internal error in a scrape", { target = loop.st.url, err = tostring(ptr) })
      ptr, len, ctype = nil, "internal error in prometheus.scrape: " .. tostring(ptr):gsub("^[^\n:]*:%d+: ", ""), 0
    end
    if loop.stopped then
      if type(keep) == "userdata" then
        keep:free()
      end
      return
    end
    if ptr then
      size, parsed = len, true
      ok, err = self:parse(loop, ptr, len, ctype, ts, t0 + loop.st.timeout, keep)
      if loop.stopped then -- the parse was forgotten
        if type(keep) == "userdata" then
          keep:free()
        end
        return
      end
    else -- fetch returned nil, err, size
      ok, err, size = false, len, ctype
      loop.t:fail(ts)
    end
    if type(keep) == "userdata" then -- a C body: free it now rather than at some later GC
      keep:free()
    end
  end
  local dur = ffi_rt.monotonic() - t0
  -- a failed body reports the samples parsed before it failed, as Prometheus
  local samples = ok and tonumber(stats.samples) or (parsed and tonumber(stats.parsed) or 0)
  if loop.source and ok then
    self.ctx:count_in(loop.source, samples)
  end
  local added = ok and tonumber(stats.series_added) or 0
  -- up, duration, scraped, post relabeling, added; with extra_metrics timeout, limit, body size
  local reported, rerr = loop.t:report(ts, ok and 1 or 0, dur, samples, samples, added, self.args.extra_metrics,
    loop.st.timeout, self.args.sample_limit, size)
  if not reported then
    self.ctx.log:error("writing the report series failed", { target = loop.st.url, err = rerr })
  end
  if err and err:find("label_[a-z_]*limit exceeded") then
    self.m.label_limits:with(self.ctx.id):inc()
  elseif err == "histogram bucket limit exceeded" then
    self.m.bucket_limit:with(self.ctx.id):inc()
  end
  self:forward(loop.t:batch())
  self:forward(loop.t:report_batch())
  -- a batch is valid only during append: idle until the next scrape, it holds no memory
  loop.t:clear()
  loop.health = ok and "up" or "down"
  if span.sampled then
    span:set("component_id", self.ctx.id)
    span:set("url.full", loop.st.url)
    span:set("job", loop.st.labels.job)
    span:set("up", ok and 1 or 0)
    span:set("samples_scraped", samples)
    span:finish(err)
  end
  loop.span = nil
  loop.last_error = err
  loop.last_scrape = ts / 1000
  loop.last_duration = dur
  loop.last_samples = samples
  if err then
    self.ctx.log:debug("scrape failed", { target = loop.st.url, err = err })
  end
end

function Instance:update(args)
  self:configure(args)
end

-- The component stops (removed, or moonwatch shuts down): as Prometheus when its
-- scrape manager stops, no staleness markers, and none of the removed targets'
-- are written any more.
function Instance:stop()
  for _, loop in pairs(self.loops) do
    stop_loop(loop)
  end
  for _, loop in pairs(self.leaving) do
    scheduler.cancel(loop.stale_task)
  end
  self.loops, self.leaving = {}, {}
end

local iso = duration.iso8601

function Instance:debug_info()
  local targets = {}
  for _, loop in pairs(self.loops) do
    targets[#targets + 1] = {
      job = loop.st.labels.job,
      url = loop.st.url,
      health = loop.health,
      labels = loop.st.labels,
      discovered_labels = loop.st.discovered,
      last_scrape = iso(loop.last_scrape),
      last_scrape_duration = loop.last_duration and string.format("%.6fs", loop.last_duration),
      last_error = loop.last_error or "",
      samples = loop.last_samples,
      series = loop.t:series(),
    }
  end
  table.sort(targets, function(a, b)
    return a.url < b.url
  end)
  return { targets = targets, target_errors = self.target_errors }
end

return M
