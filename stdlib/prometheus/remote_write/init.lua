--- prometheus.remote_write: ships the samples it receives to Prometheus
--- Remote-Write 1.0 endpoints through a crash-safe write-ahead log.
-- An append is acknowledged once the batch is in the WAL (runtime/storage/metrics_wal.c on the record log); each
-- endpoint reads the WAL with its own cursor and sends snappy-compressed
-- protobuf WriteRequests (encoded in C), committing the cursor after a 2xx. On
-- start everything written but not yet sent is sent. 5xx and network errors
-- are retried with exponential backoff, 429 too when retry_on_http_429 (a
-- Retry-After of a 5xx or 429 is honoured); any other status (4xx, a 3xx not
-- followed) is dropped and counted, as Prometheus does.
--
-- Shards. Each endpoint reads the WAL in spans cut into one request per shard
-- (runtime/remote/wal_reader.c: a series always goes to the same shard, by a hash of its
-- WAL ref) and queues each request to its shard's sender; the senders work
-- independently, each sending its requests in order with its own retries, and
-- the reader reads ahead while the queues hold less than capacity samples per
-- shard. A span is committed once all its requests are done (the cursor moves
-- over committed spans in order). A new shard count waits for the requests in
-- flight, so the samples of a series arrive in order whatever the count,
-- which prometheus.remote_write.shards (shards.lua beside this file) recomputes every 10 s between min_shards and
-- max_shards as Prometheus does (rates of samples in, out and dropped and of
-- send time). With sample_age_limit, samples and exemplars older than that
-- are dropped (and counted) when read and before each retry.
--
-- A stuck endpoint is never silent: when samples have been pending (unread or in
-- flight) and none was sent for three batch_send_deadlines, or remote_timeout if
-- longer, the component turns unhealthy saying which endpoint, for how long and
-- its last error, and logs it; it turns healthy again once one is sent.
-- prometheus_remote_storage_oldest_unsent_sample_age_seconds shows the lag.
local ffi_rt = require("moonwatch.ffi")
local batch = require("moonwatch.batch")
local native_wal = require("moonwatch.native.wal")
local httpconfig = require("moonwatch.httpconfig")
local http_client = require("moonwatch.http_client")
local push_endpoint = require("moonwatch.push_endpoint")
local tracing = require("moonwatch.tracing")
local metrics = require("moonwatch.metrics")
local relabel = require("moonwatch.relabel")
local scheduler = require("moonwatch.scheduler")
local duration = require("moonwatch.duration")
local metadata = require("moonwatch.metadata")
local remote_shards = require("prometheus.remote_write.shards")
local redact = require("moonwatch.redact")
local receiver = require("moonwatch.receiver")

local MAX_SHARDS = native_wal.MAX_SHARDS
local NO_MIN_TS = -2 ^ 63 -- INT64_MIN: no sample is too old

local M = {
  name = "prometheus.remote_write",
  doc = "Sends received metrics to Prometheus Remote-Write endpoints through a write-ahead log.",
}

local QUEUE = {
  args = {
    capacity = { type = "int", default = 10000, min = 1,
      doc = "Samples each shard's queue holds: the WAL is read ahead of sending until the queues are this full"
        .. " (the WAL itself buffers the rest)." },
    min_shards = { type = "int", default = 1, doc = "Minimum shards (concurrent requests)." },
    max_shards = { type = "int", default = 50,
      doc = "Maximum shards (concurrent requests); the count in between follows the load, as in Prometheus." },
    max_samples_per_send = { type = "int", default = 2000, doc = "Maximum samples per request." },
    batch_send_deadline = { type = "duration", default = "5s", positive = true,
      doc = "Longest a sample waits before it is sent." },
    min_backoff = { type = "duration", default = "30ms", min = 0, doc = "Initial retry delay, doubled on each retry." },
    max_backoff = { type = "duration", default = "5s", min = 0, doc = "Maximum retry delay." },
    retry_on_http_429 = { type = "bool", default = true, doc = "Retry on HTTP 429 (honouring Retry-After)." },
    sample_age_limit = { type = "duration", default = "0s",
      doc = "When above 0, samples older than this are not sent: dropped (and counted) when read and before a"
        .. " retry." },
  },
  validate = function(q)
    if q.max_samples_per_send <= 0 then
      return "max_samples_per_send must be positive"
    end
    if q.min_shards < 1 or q.max_shards < q.min_shards then
      return "need 1 <= min_shards <= max_shards"
    end
    if q.max_shards > MAX_SHARDS then
      return "max_shards: at most " .. MAX_SHARDS
    end
    if q.sample_age_limit < 0 then
      return "sample_age_limit: must not be negative"
    end
  end,
}

local METADATA = {
  args = {
    send = { type = "bool", default = true,
      doc = "Whether to send metric metadata (family name, type, help, unit) to the endpoint: every send_interval,"
        .. " the metadata of the last scrape of every target whose samples reached this component in that interval"
        .. " (metadata travels with the samples: through prometheus.relabel and any component that forwards the"
        .. " batches it gets; exporters included; a target scraped less often than send_interval is in the rounds"
        .. " its scrapes fall in), deduplicated, in requests that carry only metadata. As in Prometheus, it is not kept in the"
        .. " WAL: a restart or an endpoint down for longer than send_interval loses a round, the next one resends"
        .. " it all." },
    send_interval = { type = "duration", default = "1m", doc = "How often metadata is sent." },
    max_samples_per_send = { type = "int", default = 2000, doc = "Maximum metadata entries per request." },
  },
  validate = function(m)
    if m.send_interval <= 0 then
      return "send_interval must be positive"
    end
    if m.max_samples_per_send <= 0 then
      return "max_samples_per_send must be positive"
    end
  end,
}

local ENDPOINT = {
  args = httpconfig.add_args({
    url = { type = "string", required = true, doc = "Full URL to send metrics to." },
    name = { type = "string", doc = "Name for the endpoint in metrics and the WAL cursor (default: a hash of the url)." },
    remote_timeout = { type = "duration", default = "30s", positive = true, doc = "Timeout for requests to the endpoint." },
    headers = { type = "map", of = { type = "secret" }, default = {}, sensitive = true,
      doc = "Extra headers to send (their values are secrets: never shown)." },
    send_exemplars = { type = "bool", default = true,
      doc = "Whether to send exemplars (OpenMetrics scrapes keep them; they are in the WAL either way)." },
    send_native_histograms = { type = "bool", default = false,
      doc = "Whether to send native histograms (TimeSeries.histograms of Remote-Write 1.0). They are in the WAL"
        .. " either way; without it their samples are skipped and counted in"
        .. " prometheus_remote_storage_histograms_dropped_total{reason=\"send_native_histograms_disabled\"}, and the"
        .. " float series still flow." },
    protobuf_message = { type = "string", default = "prometheus.WriteRequest",
      doc = "The Remote-Write message: prometheus.WriteRequest (Remote-Write 1.0) only; Alloy's experimental"
        .. " io.prometheus.write.v2.Request (Remote-Write 2.0) is refused.",
      check = function(v)
        if v == "io.prometheus.write.v2.Request" then
          return nil, "io.prometheus.write.v2.Request (Remote-Write 2.0) is not supported by moonwatch: only"
            .. " prometheus.WriteRequest (Remote-Write 1.0)"
        elseif v ~= "prometheus.WriteRequest" then
          return nil, string.format("must be prometheus.WriteRequest or io.prometheus.write.v2.Request, got %q", v)
        end
      end },
    queue_config = { type = "block", schema = QUEUE, doc = "Queueing and retries." },
    metadata_config = { type = "block", schema = METADATA, doc = "Metric metadata." },
    -- Lua function rules are refused here: write relabeling runs inside the C WAL reader as it
    -- reads series records (and again after every restart), where no Lua can be called. The
    -- functions are kept as values (allow_function) so that validate refuses them by name.
    write_relabel_config = (function()
      local spec = {}
      for k, v in pairs(relabel.RULE) do
        spec[k] = v
      end
      spec.doc = "Relabeling rules applied to series before they are sent (in C, as the WAL is read); Lua"
        .. " function rules are refused here: put a prometheus.relabel with them in front."
      return spec
    end)(),
  }),
  exclusive = { httpconfig.AUTH_EXCLUSIVE },
  validate = function(e)
    if not e.url:match("^https?://") then
      return "url: must start with http:// or https://"
    end
    for i, r in ipairs(e.write_relabel_config) do
      if type(r) == "function" then
        return string.format("write_relabel_config[%d]: Lua function rules are not supported here (write"
          .. " relabeling runs in C as the WAL is read): put a prometheus.relabel with the function in front"
          .. " of this component", i)
      end
    end
    local _, rerr = relabel.compile(e.write_relabel_config)
    if rerr then
      return "write_relabel_config: " .. rerr
    end
    return http_client.validate(httpconfig.client_config(e))
  end,
}
-- Alloy's remote_write endpoints do not offer HTTP/2 by default (since its Prometheus 3.4
-- upgrade), unlike its other HTTP clients
ENDPOINT.args.enable_http2 = { type = "bool", default = false,
  doc = "Whether HTTP2 is supported for requests (off by default, as Alloy's remote_write)." }

M.args = {
  external_labels = { type = "map", default = {}, doc = "Labels added to every series sent (unless it has them)." },
  endpoint = { type = "block", repeated = true, default = {}, schema = ENDPOINT, doc = "Where to send metrics." },
  wal = { type = "block", doc = "The write-ahead log.", schema = { args = {
    truncate_frequency = { type = "duration", default = "2h", positive = true, doc = "How often the WAL is truncated." },
    min_keepalive_time = { type = "duration", default = "5m", min = 0, doc = "Minimum time sent data stays in the WAL." },
    max_keepalive_time = { type = "duration", default = "8h", min = 0,
      doc = "Data older than this is dropped even if not sent (disk stays bounded)." },
    fsync = { type = "string", default = "never", enum = { "never", "interval", "always" },
      doc = "moonwatch: when to fsync. Appends survive a crash of the process with every policy; only always "
          .. "survives power loss at every moment (and blocks the event loop for each append's fsync); "
          .. "interval fsyncs on a worker thread." },
    fsync_interval = { type = "duration", default = "10s", positive = true,
      doc = "moonwatch: fsync period with fsync = \"interval\"." },
  } } },
}

M.exports = {
  receiver = { type = "receiver", doc = "Send metrics here (forward_to)." },
}

local function component_metrics()
  local reg = metrics.default
  local l = { "component_id", "url" }
  local c = { "component_id" }
  local r = { "component_id", "url", "reason" }
  local h = function(name, help, labels, buckets)
    return reg:histogram(name, help, labels, buckets)
  end
  return {
    samples = reg:counter("prometheus_remote_storage_samples_total", "Total number of samples sent to remote storage.", l),
    failed = reg:counter("prometheus_remote_storage_samples_failed_total",
      "Total number of samples which failed on send to remote storage, non-recoverable errors.", l),
    retried = reg:counter("prometheus_remote_storage_samples_retried_total",
      "Total number of samples which failed on send to remote storage but were retried because the send error"
          .. " was recoverable.", l),
    dropped = reg:counter("prometheus_remote_storage_samples_dropped_total",
      "Total number of samples which were dropped after being read from the WAL before being sent via remote"
        .. " write, either via relabelling, due to being too old or unintentionally because of an unknown reference"
        .. " ID.", r),
    pending = reg:gauge("prometheus_remote_storage_samples_pending",
      "The number of samples pending in the queue's shards to be sent to the remote storage.", l),
    bytes = reg:counter("prometheus_remote_storage_bytes_total",
      "The total number of bytes of data (not metadata) sent by the queue after compression.", l),
    duration = h("prometheus_remote_storage_sent_batch_duration_seconds", "Duration of send calls to the remote storage.", l,
      { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300 }),
    shards = reg:gauge("prometheus_remote_storage_shards",
      "The number of shards used for parallel sending to the remote storage.", l),
    shards_desired = reg:gauge("prometheus_remote_storage_shards_desired",
      "The number of shards that the queues shard calculation wants to run based on the rate of samples in"
        .. " vs. samples out.", l),
    shards_min = reg:gauge("prometheus_remote_storage_shards_min",
      "The minimum number of shards that the queue is allowed to run.", l),
    shards_max = reg:gauge("prometheus_remote_storage_shards_max",
      "The maximum number of shards that the queue is allowed to run.", l),
    capacity = reg:gauge("prometheus_remote_storage_shard_capacity",
      "The capacity of each shard of the queue used for parallel sending to the remote storage.", l),
    highest = reg:gauge("prometheus_remote_storage_highest_timestamp_in_seconds",
      "Highest timestamp that has come into the remote storage via the Appender interface, in seconds since epoch.", c),
    highest_sent = reg:gauge("prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
      "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since epoch.", l),
    appended = reg:counter("prometheus_remote_write_wal_samples_appended_total",
      "Total number of samples appended to the WAL.", c),
    ex_appended = reg:counter("prometheus_remote_write_wal_exemplars_appended_total",
      "Total number of exemplars appended to the WAL.", c),
    exemplars = reg:counter("prometheus_remote_storage_exemplars_total", "Total number of exemplars sent to remote storage.", l),
    ex_failed = reg:counter("prometheus_remote_storage_exemplars_failed_total",
      "Total number of exemplars which failed on send to remote storage, non-recoverable errors.", l),
    ex_retried = reg:counter("prometheus_remote_storage_exemplars_retried_total",
      "Total number of exemplars which failed on send to remote storage but were retried because the send error"
        .. " was recoverable.", l),
    ex_dropped = reg:counter("prometheus_remote_storage_exemplars_dropped_total",
      "Total number of exemplars which were dropped after being read from the WAL before being sent via remote"
        .. " write, either via relabelling, due to being too old or unintentionally because of an unknown reference"
        .. " ID.", r),
    ex_pending = reg:gauge("prometheus_remote_storage_exemplars_pending",
      "The number of exemplars pending in the queue's shards to be sent to the remote storage.", l),
    histograms = reg:counter("prometheus_remote_storage_histograms_total",
      "Total number of histograms sent to remote storage.", l),
    h_failed = reg:counter("prometheus_remote_storage_histograms_failed_total",
      "Total number of histograms which failed on send to remote storage, non-recoverable errors.", l),
    h_retried = reg:counter("prometheus_remote_storage_histograms_retried_total",
      "Total number of histograms which failed on send to remote storage but were retried because the send"
        .. " error was recoverable.", l),
    h_dropped = reg:counter("prometheus_remote_storage_histograms_dropped_total",
      "Total number of histograms which were dropped after being read from the WAL before being sent via remote"
        .. " write, either via relabelling, due to being too old or unintentionally because of an unknown reference"
        .. " ID.", r),
    h_pending = reg:gauge("prometheus_remote_storage_histograms_pending",
      "The number of histograms pending in the queue's shards to be sent to the remote storage.", l),
    active = reg:gauge("prometheus_remote_write_wal_storage_active_series",
      "Current number of active series being tracked by the WAL storage.", c),
    created = reg:counter("prometheus_remote_write_wal_storage_created_series_total",
      "Total number of created series appended to the WAL.", c),
    removed = reg:counter("prometheus_remote_write_wal_storage_removed_series_total",
      "Total number of created series removed from the WAL.", c),
    wal_bytes = reg:gauge("prometheus_remote_write_wal_bytes",
      "moonwatch: bytes of the WAL on disk (segments and checkpoint).", c),
    oldest_age = reg:gauge("prometheus_remote_storage_oldest_unsent_sample_age_seconds",
      "moonwatch: age of the oldest sample this queue has not sent yet (now minus its timestamp; 0 when"
        .. " nothing is pending): how far behind the endpoint is.", l),
    corruptions = reg:counter("prometheus_remote_write_wal_corruptions_repaired_total",
      "moonwatch: torn or corrupt WAL records cut at open or skipped.", c),
    cursor_errors = reg:counter("prometheus_remote_write_wal_cursor_errors_total",
      "moonwatch: damaged or unreadable cursor files found when an endpoint started (its previous copy was"
        .. " used, or without one the WAL was read again from its oldest data), or a cursor past the WAL's end.", l),
  }
end


local Instance = {}
Instance.__index = Instance

function M.validate(args)
  return push_endpoint.validate_names(args.endpoint)
end

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, endpoints = {}, m = component_metrics() }, Instance)
  local wal = push_endpoint.open_storage(ctx, "WAL", native_wal.open, { fsync = args.wal.fsync })
  self.wal = wal
  self.stats = wal:stats() -- refreshed in place by each wal:stats()
  if self.stats.replayed_samples > 0 or self.stats.replayed_histograms > 0 then
    ctx.log:info("replaying the WAL", { samples = tonumber(self.stats.replayed_samples),
      histograms = tonumber(self.stats.replayed_histograms), series = tonumber(self.stats.replayed_series) })
  end
  self.seen = { appended = 0, created = 0, removed = 0, corruptions = 0, ex_appended = 0 }
  ctx:export({ receiver = receiver.metrics(ctx.id, function(_, b)
    self:append(b)
  end) })
  self:configure(args)
  self.stuck_timer = ctx:timer(1, 1, function()
    self:check_stuck()
  end, "remote_write stuck check")
  self.remove_collect = metrics.default:on_collect(function()
    self:update_metrics()
  end)
  return self
end

function Instance:configure(args)
  self.args = args
  local ext = relabel.encode(args.external_labels) -- encoded external labels (sorted)
  push_endpoint.reconcile(self, args.endpoint, ext, function(ep)
    return ep.ext ~= ext
  end, function(ep, e)
    self:set_relabel(ep, e.write_relabel_config)
    ep.reader:set_exemplars(e.send_exemplars)
    ep.reader:set_histograms(e.send_native_histograms)
    self:set_queue_config(ep, e.queue_config)
  end)
  self:configure_metadata()
  self:schedule_maintenance()
end

function Instance:schedule_maintenance()
  local ctx, w = self.ctx, self.args.wal
  if self.truncate_timer then
    self.truncate_timer:close()
  end
  self.truncate_timer = ctx:timer(w.truncate_frequency, w.truncate_frequency, function()
    self:truncate()
  end, "wal truncate")
  if self.sync_timer then
    self.sync_timer:close()
    self.sync_timer = nil
  end
  if w.fsync == "interval" then
    self.sync_timer = ctx:timer(w.fsync_interval, w.fsync_interval, function()
      local ok, err = self.wal:sync_start()
      if not ok then
        ctx.log:error("WAL fsync failed", { err = err })
      end
    end, "wal fsync")
  end
end

function Instance:truncate()
  local w = self.args.wal
  local now = math.floor(ffi_rt.time_now() * 1000)
  -- the truncation writes a checkpoint of the series still wanted, then removes older segments
  local span = tracing.start("prometheus.remote_write.wal_truncate", nil, tracing.INTERNAL)
  local ok, err = self.wal:truncate(now, w.min_keepalive_time * 1000, w.max_keepalive_time * 1000)
  if not ok then
    self.ctx.log:error("WAL truncation failed", { err = err })
  end
  if span.sampled then
    span:set("component_id", self.ctx.id)
    span:finish(err)
  end
  self:update_metrics()
end

local function same_rules(a, b)
  if a == nil or #a ~= #b then
    return false
  end
  for i, x in ipairs(a) do
    local y = b[i]
    if x.separator ~= y.separator or x.regex ~= y.regex or x.modulus ~= y.modulus or x.target_label ~= y.target_label
      or x.replacement ~= y.replacement or x.action ~= y.action or #x.source_labels ~= #y.source_labels then
      return false
    end
    for j, v in ipairs(x.source_labels) do
      if y.source_labels[j] ~= v then
        return false
      end
    end
  end
  return true
end

-- Sets the endpoint's write relabeling (when the rules changed). The program stays referenced from ep
-- while the reader uses it.
function Instance.set_relabel(_, ep, rules)
  if same_rules(ep.rules, rules) then
    return
  end
  local program
  if #rules > 0 then
    program = assert(relabel.compile(rules)) -- validated already
  end
  local ok, err = ep.reader:set_relabel(program)
  if not ok then
    error(string.format("endpoint %s: write_relabel_config: %s", ep.name, err), 0)
  end
  ep.program, ep.rules = program, rules
end

-- The shard gauges and the calculator's limits after a (new) queue_config.
function Instance:set_queue_config(ep, q)
  local m, l = self.m, ep.labels
  ep.sharder:configure(q)
  m.shards_min:with(unpack(l)):set(q.min_shards)
  m.shards_max:with(unpack(l)):set(q.max_shards)
  m.capacity:with(unpack(l)):set(q.capacity)
  ep.m.shards:set(ep.sharder.shards)
  ep.m.shards_desired:set(ep.sharder.desired)
end

-- A generation of shard senders (Instance:set_senders): n senders, each sending its queue's
-- requests (read with n shards) in order; the request each is sending; idle senders; requests left
-- by span seq; requests queued or in flight and their samples; broken: a sender died on an error.
-- A generation is retired when the shard count changes (with nothing in flight), after a sender
-- failed and when the endpoint stops: its senders are cancelled, and one that is running then
-- (it woke the reader, which retired it) touches nothing of the next generation.
local function new_gen(n)
  return { n = n, queues = {}, sending = {}, idle = {}, tasks = {}, spans = {}, inflight = 0, queued = 0 }
end

local function retire(g)
  g.closed = true
  for task in pairs(g.tasks) do
    scheduler.cancel(task)
  end
end

function Instance:start_endpoint(name, e, ext)
  local reader, rerr = self.wal:reader(name, ext)
  if not reader then
    error(string.format("endpoint %s: %s", name, rerr), 0)
  end
  local l = { self.ctx.id, redact.url(e.url) } -- a label never carries a password
  local m = self.m
  local ep = {
    name = name, cfg = e, ext = ext, reader = reader, labels = l,
    client = push_endpoint.new_client(e),
    rstats = reader:stats(), -- refreshed in place by each reader:stats()
    m = {
      samples = m.samples:with(unpack(l)), failed = m.failed:with(unpack(l)), retried = m.retried:with(unpack(l)),
      pending = m.pending:with(unpack(l)), bytes = m.bytes:with(unpack(l)),
      duration = m.duration:with(unpack(l)), highest_sent = m.highest_sent:with(unpack(l)),
      exemplars = m.exemplars:with(unpack(l)), ex_failed = m.ex_failed:with(unpack(l)),
      ex_retried = m.ex_retried:with(unpack(l)),
      ex_pending = m.ex_pending:with(unpack(l)), oldest_age = m.oldest_age:with(unpack(l)),
      histograms = m.histograms:with(unpack(l)), h_failed = m.h_failed:with(unpack(l)),
      h_retried = m.h_retried:with(unpack(l)), h_pending = m.h_pending:with(unpack(l)),
      shards = m.shards:with(unpack(l)), shards_desired = m.shards_desired:with(unpack(l)),
      cursor_errors = m.cursor_errors:with(unpack(l)),
    },
    cursor_errors_seen = 0,
    last_send = scheduler.now(), dropped_seen = {}, ex_dropped_seen = {}, h_dropped_seen = {}, highest_sent = 0,
    sharder = remote_shards.new(e.queue_config), gen = new_gen(0),
    -- progress: loop time of the last request sent (2xx) or of the last check that found nothing
    -- pending; last_read: of the last read of the WAL (a span, or nothing new)
    progress_at = scheduler.now(), last_read = scheduler.now(),
  }
  local note = ep.reader:note()
  if note ~= "" then
    self.ctx.log:warn("remote write cursor damaged", { endpoint = name, err = note })
  end
  self:set_relabel(ep, e.write_relabel_config)
  ep.reader:set_exemplars(e.send_exemplars)
  ep.reader:set_histograms(e.send_native_histograms)
  self:set_queue_config(ep, e.queue_config)
  ep.shard_timer = self.ctx:timer(ep.sharder.interval, ep.sharder.interval, function()
    self:update_shards(ep)
  end, "remote_write shards " .. name)
  ep.task = self.ctx:spawn(function()
    self:run_endpoint(ep)
  end, "remote_write " .. name)
  return ep
end

function Instance.stop_endpoint(_, ep)
  ep.stopped = true
  if ep.shard_timer then
    ep.shard_timer:close()
    ep.shard_timer = nil
  end
  retire(ep.gen)
  push_endpoint.stop(ep)
end

-- Recomputes the endpoint's shard count (every remote_shards.UPDATE_INTERVAL); the next span uses it.
function Instance:update_shards(ep)
  self:update_metrics() -- feeds the dropped samples to the calculator, sets self.highest
  local delay = (self.highest or 0) - ep.highest_sent
  local before = ep.sharder.shards
  local n = ep.sharder:tick(ep.highest_sent > 0 and delay or 0, scheduler.now())
  ep.m.shards:set(n)
  ep.m.shards_desired:set(ep.sharder.desired)
  if n ~= before then
    self.ctx.log:info("remote write resharding", { endpoint = ep.name, from = before, to = n,
      desired = string.format("%.2f", ep.sharder.desired) })
  end
end

-- Samples in the WAL: appended since the start and replayed at it. Native histogram samples
-- count too: the WAL's record log counts both kinds as items (a cursor's samples_before_open and
-- the max_keepalive drops are items), so the pending and unread sums below are of both kinds.
local function wal_samples(st)
  return tonumber(st.samples_appended) + tonumber(st.replayed_samples) + tonumber(st.histograms_appended)
    + tonumber(st.replayed_histograms)
end

-- Samples a reader will not send, by Prometheus's reasons for samples_dropped_total: too old
-- (sample_age_limit, or truncated away unread at max_keepalive_time), of a series dropped by write
-- relabeling, or of a series whose record was lost (an unknown reference).
local function dropped_by_reason(r)
  return {
    too_old = tonumber(r.samples_dropped) + tonumber(r.samples_too_old),
    dropped_series = tonumber(r.samples_relabel_dropped),
    unintentionally_dropped_series = tonumber(r.unknown_series),
  }
end

-- The same for exemplars_dropped_total.
local function ex_dropped_by_reason(r)
  local old, relabeled = tonumber(r.exemplars_too_old), tonumber(r.exemplars_relabel_dropped)
  return { too_old = old, dropped_series = relabeled,
    unintentionally_dropped_series = tonumber(r.exemplars_dropped) - old - relabeled }
end

-- The same for histograms_dropped_total; histograms not sent for want of send_native_histograms
-- are counted too, as reason "send_native_histograms_disabled".
local function h_dropped_by_reason(r)
  local old, relabeled, unsent = tonumber(r.histograms_too_old), tonumber(r.histograms_relabel_dropped),
    tonumber(r.histograms_unsent)
  return { too_old = old, dropped_series = relabeled, send_native_histograms_disabled = unsent,
    unintentionally_dropped_series = tonumber(r.histograms_dropped) - old - relabeled - unsent }
end

-- Samples and histogram samples the endpoint dropped (the unknown series of both kinds are in
-- unknown_series).
local function dropped_samples(r)
  local d = dropped_by_reason(r)
  local hd = h_dropped_by_reason(r)
  return d.too_old + d.dropped_series + d.unintentionally_dropped_series + hd.too_old + hd.dropped_series
    + hd.send_native_histograms_disabled
end

-- Samples of the WAL the endpoint is done with: committed or dropped since the start, and those
-- before its cursor at the start (sent before a restart).
local function done_samples(r)
  return tonumber(r.samples_committed) + tonumber(r.histograms_committed) + dropped_samples(r)
    + tonumber(r.samples_before_open)
end

-- Adds to counter{component_id, url, reason} what grew since seen (by reason; a reason's series
-- appears with its first drop, as in Prometheus). Returns the total growth.
local function add_by_reason(counter, l, now, seen)
  local total = 0
  for why, v in pairs(now) do
    local d = v - (seen[why] or 0)
    if d > 0 then
      counter:with(l[1], l[2], why):add(d)
      total = total + d
    end
    seen[why] = v
  end
  return total
end

-- About how many samples the endpoint has not read yet (resends make it an underestimate).
local function unread(self, ep)
  self.wal:stats()
  ep.reader:stats()
  return wal_samples(self.stats) - tonumber(ep.rstats.samples_read) - tonumber(ep.rstats.histograms_read)
    - dropped_samples(ep.rstats) - tonumber(ep.rstats.samples_before_open)
end

-- Seconds since the oldest sample the endpoint has not sent: the oldest timestamp of the requests
-- in flight (the reader reads in WAL order: everything read before them is committed), else, while
-- samples wait to be read, the time since the reader last read; 0 when nothing is pending.
local function oldest_unsent_age(self, ep)
  local g, oldest = ep.gen, math.huge
  for k = 0, g.n - 1 do
    local r = g.sending[k]
    if r and r.min_ts < oldest then
      oldest = r.min_ts
    end
    for _, q in ipairs(g.queues[k]) do
      oldest = math.min(oldest, q.min_ts)
    end
  end
  if oldest < math.huge then
    return math.max(0, ffi_rt.time_now() - oldest / 1000)
  elseif unread(self, ep) > 0 then
    return scheduler.now() - ep.last_read
  end
  return 0
end

-- How long an endpoint may have samples pending without sending any before it is reported stuck:
-- three batch_send_deadlines, or remote_timeout if longer (a request may take that long).
local function stall_after(e)
  return math.max(3 * e.queue_config.batch_send_deadline, e.remote_timeout)
end

-- Every second: an endpoint with samples pending (unread or in flight) that sent none for longer
-- than stall_after is stuck; the component is unhealthy while one is, saying which and why, and
-- logs when one gets stuck and when it sends again.
function Instance:check_stuck()
  local now, problems = scheduler.now(), {}
  for name, ep in pairs(self.endpoints) do
    if ep.stopped then -- stopping: its reader is closed
      return
    end
    if ep.gen.inflight == 0 and unread(self, ep) <= 0 then
      ep.progress_at = now
    end
    local quiet = now - ep.progress_at
    if quiet > stall_after(ep.cfg) then
      local msg = string.format("endpoint %s: samples pending and none sent for %s (oldest unsent sample %s old)",
        name, duration.format(math.floor(quiet)), duration.format(math.floor(oldest_unsent_age(self, ep))))
      if ep.last_error then
        msg = msg .. "; last error: " .. ep.last_error
      end
      problems[#problems + 1] = msg
      if not ep.stuck then
        ep.stuck = true
        self.ctx.log:warn("remote write endpoint is stuck", { endpoint = name, err = msg })
      end
    elseif ep.stuck then
      ep.stuck = false
      self.ctx.log:info("remote write endpoint sends again", { endpoint = name })
    end
  end
  table.sort(problems)
  self.stuck_problems = problems
  self:refresh_health()
end

-- The component's health: unhealthy while an endpoint is stuck or the WAL refuses appends.
function Instance:refresh_health()
  local problems = { unpack(self.stuck_problems or {}) }
  local f = self.append_fault
  if f then
    table.insert(problems, 1, string.format("WAL appends failing since %s ago (%d samples dropped), last %s ago: %s",
      duration.format(math.floor(scheduler.now() - f.since)), f.lost,
      duration.format(math.floor(scheduler.now() - f.last)), f.why))
  end
  push_endpoint.report_health(self, problems)
end

-- POSTs one request body (samples or metadata) to the endpoint, with the protocol's headers:
-- "sent"; "retry", err, wait; or "rejected", err (push_endpoint.post). The split is Prometheus's
-- between recoverable and unrecoverable errors.
function Instance.post(_, ep, body, backoff, span)
  local headers = {
    ["Content-Encoding"] = "snappy",
    ["Content-Type"] = "application/x-protobuf",
    ["X-Prometheus-Remote-Write-Version"] = "0.1.0",
  }
  local outcome, why, wait, _, seconds = push_endpoint.post(ep, body, headers, backoff,
    ep.cfg.queue_config.retry_on_http_429, span)
  ep.m.duration:observe(seconds)
  return outcome, why, wait
end

-- The oldest timestamp (ms) still sent under sample_age_limit, or NO_MIN_TS.
local function min_ts(q)
  if q.sample_age_limit <= 0 then
    return NO_MIN_TS
  end
  return math.floor((ffi_rt.time_now() - q.sample_age_limit) * 1000)
end

-- Samples a span should hold before it is sent early (before batch_send_deadline): full requests
-- for every shard, as each of Prometheus's shards waits for a full batch.
local function span_target(ep)
  return ep.sharder.shards * ep.cfg.queue_config.max_samples_per_send
end

-- The endpoint's reader and its shards. The reader reads spans in WAL order and hands each shard's
-- request to that shard's sender, which sends its requests one after the other, each until it is
-- accepted or dropped: shards send independently, as in Prometheus, and the reader reads ahead while
-- the shards' queues hold less than capacity samples each. A span is committed once all its requests
-- are done (the WAL moves the cursor over committed spans in order). A series always goes to the same
-- shard for a shard count, so its samples are sent in order; a new shard count takes effect once the
-- requests read with the old one are done.
function Instance:run_endpoint(ep)
  while not ep.stopped do
    local q = ep.cfg.queue_config
    local n, g = ep.sharder.shards, ep.gen
    if g.broken then
      self:restart_senders(ep)
    elseif g.inflight > 0 and (n ~= g.n or g.queued >= g.n * math.max(q.capacity, q.max_samples_per_send)) then
      -- a new shard count waits for the requests in flight; so does reading, for room in the queues
      if not self:wait_reader(ep, q.batch_send_deadline) then
        return
      end
    else
      if n ~= g.n then
        self:set_senders(ep, n)
      end
      -- wait for full requests or the batch deadline (not while flushing at stop); a sender that
      -- finishes a request wakes the reader too, which then waits on
      while not self.flushing and unread(self, ep) < span_target(ep)
        and scheduler.now() - ep.last_send < q.batch_send_deadline do
        if not self:wait_reader(ep, math.max(0.001, q.batch_send_deadline - (scheduler.now() - ep.last_send))) then
          return
        end
      end
      local span, rerr = ep.reader:next_shards(n, q.max_samples_per_send, min_ts(q))
      if span ~= nil then
        ep.last_read = scheduler.now()
      end
      if span == nil then
        self.ctx.log:error("reading the WAL failed", { endpoint = ep.name, err = rerr })
        self.ctx:sleep(1)
      elseif not span then
        -- nothing new: wait for appends (woken by full requests) or the deadline
        ep.last_send = scheduler.now()
        if not self:wait_reader(ep, self.flushing and 0.02 or q.batch_send_deadline) then
          return
        end
      else
        self:enqueue_span(ep, n)
        ep.last_send = scheduler.now()
      end
    end
    self:update_metrics()
  end
end

-- The reader waits up to seconds, or until an append brings full requests or a sender finishes a
-- request. false if the endpoint was stopped meanwhile.
function Instance.wait_reader(_, ep, seconds)
  return push_endpoint.wait(ep, seconds)
end

-- Hands the requests of the span just read to their shards' senders (copied: the reader's buffers
-- are reused by the next read).
function Instance.enqueue_span(_, ep, n)
  local g = ep.gen
  local reader = ep.reader
  local count, seq = 0, reader:span_seq()
  for k = 0, n - 1 do
    local body, samples, exemplars, lo, hi, hists = reader:shard(k)
    if body then
      local req = { seq = seq, body = body, samples = samples, exemplars = exemplars, min_ts = lo, max_ts = hi,
        histograms = hists }
      req.queued = req.samples + req.histograms
      local queue = g.queues[k]
      queue[#queue + 1] = req
      count = count + 1
      g.inflight = g.inflight + 1
      g.queued = g.queued + req.queued
      if g.idle[k] then
        scheduler.wake(g.idle[k])
      end
    end
  end
  if count == 0 then
    reader:commit(seq)
  else
    g.spans[seq] = (g.spans[seq] or 0) + count
  end
end

-- Starts n shard senders with empty queues in a new generation; the old one, which has nothing in
-- flight, is retired.
function Instance:set_senders(ep, n)
  retire(ep.gen)
  local g = new_gen(n)
  ep.gen = g
  for k = 0, n - 1 do
    g.queues[k] = {}
    local task = scheduler.spawn(function()
      self:run_sender(ep, g, k)
    end, { name = "remote_write " .. ep.name .. " shard " .. k, component_id = self.ctx.id,
      on_exit = function(t, ok)
        g.tasks[t] = nil
        if not ok and not g.closed then
          -- it died on an error (the scheduler logged and counted it): its request was neither sent
          -- nor dropped, so nothing uncommitted is trusted; the reader starts again from the cursor
          g.broken = true
          if ep.waiting then
            scheduler.wake(ep.waiting)
          end
        end
      end })
    if not task.done then
      g.tasks[task] = true
    end
  end
end

-- After a sender failed: retires the senders, forgets what is in flight and reads again from the
-- committed cursor (delivery is at least once), after max_backoff.
function Instance:restart_senders(ep)
  retire(ep.gen)
  ep.gen = new_gen(0)
  ep.reader:rewind()
  self.ctx:sleep(ep.cfg.queue_config.max_backoff)
end

-- Shard k's sender of generation g: sends its queue's requests in order, until g is retired. It
-- may be the task that wakes the reader, which may retire g and start a new generation before the
-- wake returns: so g's state is its own, and it checks g.closed after every wake and send.
function Instance:run_sender(ep, g, k)
  local queue, me = g.queues[k], scheduler.current()
  while not g.closed do
    local req = table.remove(queue, 1)
    if req then
      g.sending[k] = req
      self:send(ep, g, req)
      g.sending[k] = nil
      if g.closed then -- not done: read again after the rewind or the next start
        return
      end
      g.inflight = g.inflight - 1
      g.queued = g.queued - req.queued
      local left = g.spans[req.seq] - 1
      g.spans[req.seq] = left > 0 and left or nil
      if left == 0 then
        ep.reader:commit(req.seq)
      end
      if ep.waiting then
        scheduler.wake(ep.waiting)
      end
    else
      g.idle[k] = me
      local ok = pcall(scheduler.suspend)
      g.idle[k] = nil
      if not ok then
        return
      end
    end
  end
end

-- Sends one shard's request until it is accepted, or dropped (rejected by post(); everything in it
-- too old).
function Instance:send(ep, g, req)
  local q = ep.cfg.queue_config
  local backoff = q.min_backoff
  local started = ffi_rt.monotonic()
  local tries = 0
  while not g.closed do
    tries = tries + 1
    local oldest = tries > 1 and min_ts(q) or NO_MIN_TS
    if req.min_ts < oldest then
      -- sample_age_limit: what aged while retrying is not sent (the request is re-encoded without it)
      local d, body, samples, exemplars, lo, hi, hists = ep.reader:drop_old(req.seq, req.body, oldest)
      if d and d > 0 then
        req.samples, req.exemplars, req.min_ts, req.max_ts, req.body = samples, exemplars, lo, hi, body
        req.histograms = hists
        if #req.body == 0 then
          break
        end
      elseif not d and not req.unfiltered then
        -- not a request of ours (cannot happen) or out of memory: it is resent as it was
        req.unfiltered = true
        self.ctx.log:warn("sample_age_limit not applied to a retried request", { endpoint = ep.name, err = body })
      end
    end
    local span = tracing.start("prometheus.remote_write", nil, tracing.CLIENT)
    if span.sampled then
      span:set("component_id", self.ctx.id)
      span:set("samples", req.samples)
      span:set("exemplars", req.exemplars)
      span:set("retries", tries - 1)
    end
    local outcome, why, wait = self:post(ep, req.body, backoff, span)
    if outcome == "sent" then
      ep.progress_at = scheduler.now()
      ep.m.samples:add(req.samples)
      ep.m.exemplars:add(req.exemplars)
      ep.m.histograms:add(req.histograms)
      ep.m.bytes:add(#req.body)
      if req.max_ts / 1000 > ep.highest_sent then
        ep.highest_sent = req.max_ts / 1000
        ep.m.highest_sent:set(math.floor(ep.highest_sent)) -- whole seconds, as Prometheus
      end
      ep.last_error = nil
      break
    elseif outcome == "rejected" then -- will never succeed: drop it and move on
      ep.m.failed:add(req.samples)
      ep.m.ex_failed:add(req.exemplars)
      ep.m.h_failed:add(req.histograms)
      ep.last_error = why
      self.ctx.log:error("remote write rejected a request; its samples are dropped", { endpoint = ep.name,
        err = why, samples = req.samples })
      break
    end
    ep.m.retried:add(req.samples)
    ep.m.ex_retried:add(req.exemplars)
    ep.m.h_retried:add(req.histograms)
    ep.last_error = why
    self.ctx.log:warn("remote write failed; retrying", { endpoint = ep.name, err = why,
      retry_in = duration.format(wait) })
    self.ctx:sleep(wait)
    backoff = math.min(backoff * 2, q.max_backoff)
  end
  ep.sharder:request_done(req.samples, ffi_rt.monotonic() - started, scheduler.now())
end

-- A batch the WAL could not take (a full disk, an I/O error) is lost for every endpoint: counted in
-- samples_dropped_total{reason="wal_append_failed"} (and exemplars_dropped_total), logged when it
-- starts and then at most once a minute, and the component is unhealthy until appends have
-- succeeded for a minute with no failure (a nearly full disk takes small batches and refuses big
-- ones: the health must not flap). An append whose fsync failed (fsync "always") is in the WAL:
-- logged, unhealthy the same way.
local APPEND_LOG_EVERY, APPEND_QUIET = 60, 60

function Instance:append_failed(rc, samples, exemplars, why, histograms)
  local now = scheduler.now()
  local lost = rc < 0
  if lost then
    for _, ep in pairs(self.endpoints) do
      self.m.dropped:with(ep.labels[1], ep.labels[2], "wal_append_failed"):add(samples)
      if exemplars > 0 then
        self.m.ex_dropped:with(ep.labels[1], ep.labels[2], "wal_append_failed"):add(exemplars)
      end
      if (histograms or 0) > 0 then
        self.m.h_dropped:with(ep.labels[1], ep.labels[2], "wal_append_failed"):add(histograms)
      end
    end
  end
  local f = self.append_fault
  if not f then
    f = { since = now, lost = 0, logged = -math.huge }
    self.append_fault = f
  end
  f.lost, f.why, f.last = f.lost + (lost and samples or 0), why, now
  if now - f.logged >= APPEND_LOG_EVERY then
    f.logged = now
    self.ctx.log:error(lost and "WAL append failed; the samples are dropped" or "WAL fsync failed",
      { err = why, samples_dropped = f.lost, since = duration.format(math.floor(now - f.since)) .. " ago" })
  end
  self:refresh_health()
end

function Instance:append(b)
  for _, s in pairs(self.meta_senders) do -- metadata travels with the batch (moonwatch.metadata)
    s.gatherer:add(b)
  end
  local n = batch.len(b) + batch.histogram_count(b) -- float and native histogram samples
  if n == 0 then
    return
  end
  local ok, why, written = self.wal:append(b)
  if not ok then
    self:append_failed(written and 1 or -1, batch.len(b), batch.exemplar_count(b), why, batch.histogram_count(b))
    if not written then
      return
    end
  elseif self.append_fault and scheduler.now() - self.append_fault.last >= APPEND_QUIET then
    local f = self.append_fault
    self.append_fault = nil
    self.ctx.log:info("WAL appends again", { samples_dropped = f.lost,
      after = duration.format(math.floor(scheduler.now() - f.since)) })
    self:refresh_health()
  end
  -- a sender waiting for full requests gets them now
  for _, ep in pairs(self.endpoints) do
    ep.sharder:samples_in(n)
    if ep.waiting and unread(self, ep) >= span_target(ep) then
      scheduler.wake(ep.waiting)
    end
  end
end

-- Adds to counter{component_id} what the WAL's count key grew since the last update.
local function add_delta(self, counter, key, value)
  counter:with(self.ctx.id):add(value - self.seen[key])
  self.seen[key] = value
end

function Instance:update_metrics()
  local m, st, id = self.m, self.wal:stats(), self.ctx.id
  add_delta(self, m.appended, "appended", tonumber(st.samples_appended))
  add_delta(self, m.ex_appended, "ex_appended", tonumber(st.exemplars_appended))
  add_delta(self, m.created, "created", tonumber(st.series_created))
  add_delta(self, m.removed, "removed", tonumber(st.series_removed))
  add_delta(self, m.corruptions, "corruptions", tonumber(st.corruptions))
  m.active:with(id):set(tonumber(st.active_series))
  m.wal_bytes:with(id):set(tonumber(st.bytes))
  if st.max_ts > 0 then
    self.highest = tonumber(st.max_ts) / 1000
    m.highest:with(id):set(math.floor(self.highest)) -- whole seconds, as Prometheus
  end
  for _, ep in pairs(self.endpoints) do
    ep.reader:stats()
    ep.sharder:samples_dropped(add_by_reason(m.dropped, ep.labels, dropped_by_reason(ep.rstats), ep.dropped_seen))
    ep.m.pending:set(wal_samples(st) - done_samples(ep.rstats))
    ep.m.cursor_errors:add(tonumber(ep.rstats.cursor_errors) - ep.cursor_errors_seen)
    ep.cursor_errors_seen = tonumber(ep.rstats.cursor_errors)
    add_by_reason(m.ex_dropped, ep.labels, ex_dropped_by_reason(ep.rstats), ep.ex_dropped_seen)
    ep.m.ex_pending:set(tonumber(ep.rstats.exemplars_pending))
    add_by_reason(m.h_dropped, ep.labels, h_dropped_by_reason(ep.rstats), ep.h_dropped_seen)
    ep.m.h_pending:set(tonumber(ep.rstats.histograms_pending))
    ep.m.oldest_age:set(oldest_unsent_age(self, ep))
  end
end

function Instance:update(args)
  self:configure(args)
end

-- metadata_config: one sender task per endpoint with send = true. Every send_interval it sends the
-- metadata that came with the batches this component received in that interval (moonwatch.metadata:
-- each scrape target's, from its last scrape, as Prometheus's MetadataWatcher reads the scrape
-- manager's targets, but routed as the samples go, through any component in between), in requests
-- of at most max_samples_per_send entries that carry only metadata, with the headers of sample
-- requests. What post() calls recoverable (5xx, network errors, 429 when retry_on_http_429; after
-- Retry-After) is retried with the endpoint's backoff until the next round is due, then counted as
-- failed; any other failure is dropped and counted. Kept apart from the sample senders.

local function metadata_metrics()
  local reg, l = metrics.default, { "component_id", "url" }
  return {
    total = reg:counter("prometheus_remote_storage_metadata_total",
      "Total number of metadata entries sent to remote storage.", l),
    failed = reg:counter("prometheus_remote_storage_metadata_failed_total",
      "Total number of metadata entries which failed on send to remote storage, non-recoverable errors.", l),
    retried = reg:counter("prometheus_remote_storage_metadata_retried_total",
      "Total number of metadata entries which failed on send to remote storage but were retried because the"
        .. " send error was recoverable.", l),
    bytes = reg:counter("prometheus_remote_storage_metadata_bytes_total",
      "The total number of bytes of metadata sent by the queue after compression.", l),
  }
end

-- Starts and stops metadata senders to match the endpoints (a replaced endpoint or a new
-- send_interval gets a new sender).
function Instance:configure_metadata()
  self.meta_senders = self.meta_senders or {}
  local senders = self.meta_senders
  for name, s in pairs(senders) do
    local ep = self.endpoints[name]
    local mc = ep and ep.cfg.metadata_config
    if ep ~= s.ep or not mc.send or mc.send_interval ~= s.interval then
      scheduler.cancel(s.task)
      senders[name] = nil
    end
  end
  for name, ep in pairs(self.endpoints) do
    local mc = ep.cfg.metadata_config
    if mc.send and not senders[name] then
      local mm, l = metadata_metrics(), { self.ctx.id, redact.url(ep.cfg.url) }
      local s = { ep = ep, interval = mc.send_interval, gatherer = metadata.gatherer(), m = {
        total = mm.total:with(unpack(l)), failed = mm.failed:with(unpack(l)),
        retried = mm.retried:with(unpack(l)), bytes = mm.bytes:with(unpack(l)),
      } }
      s.task = self.ctx:spawn(function()
        self:run_metadata(s)
      end, "remote_write metadata " .. name)
      senders[name] = s
    end
  end
end

function Instance:stop_metadata()
  for name, s in pairs(self.meta_senders or {}) do
    scheduler.cancel(s.task)
    self.meta_senders[name] = nil
  end
end

-- A metadata sender: a round every send_interval (the first one after an interval, as Prometheus).
function Instance:run_metadata(s)
  local ep, due = s.ep, scheduler.now() + s.interval
  while not ep.stopped do
    self.ctx:sleep(math.max(0, due - scheduler.now()))
    due = math.max(due + s.interval, scheduler.now())
    local set, n = s.gatherer:take()
    if not set then
      self.ctx.log:error("gathering metadata failed", { endpoint = ep.name, err = n })
      n = 0
    end
    local max = ep.cfg.metadata_config.max_samples_per_send
    for first = 0, n - 1, max do
      local count = math.min(max, n - first)
      local body, eerr = metadata.encode(set, first, count)
      if body then
        self:send_metadata(ep, s.m, body, count, due)
      else
        s.m.failed:add(count)
        self.ctx.log:error("encoding metadata failed", { endpoint = ep.name, err = eerr })
      end
    end
  end
end

-- Sends one metadata request, retrying recoverable errors until the deadline (the next round).
function Instance:send_metadata(ep, m, body, count, deadline)
  local q = ep.cfg.queue_config
  local backoff = q.min_backoff
  while not ep.stopped do
    local outcome, why, wait = self:post(ep, body, backoff)
    if outcome == "sent" then
      m.total:add(count)
      m.bytes:add(#body)
      return
    elseif outcome == "rejected" then
      m.failed:add(count)
      self.ctx.log:error("remote write rejected metadata; it is dropped", { endpoint = ep.name, err = why,
        metadata = count })
      return
    elseif scheduler.now() + wait >= deadline then
      m.failed:add(count)
      self.ctx.log:error("sending metadata failed until the next round; it is dropped", { endpoint = ep.name,
        metadata = count, err = why })
      return
    end
    m.retried:add(count)
    self.ctx.log:warn("sending metadata failed; retrying", { endpoint = ep.name, err = why,
      retry_in = duration.format(wait) })
    self.ctx:sleep(wait)
    backoff = math.min(backoff * 2, q.max_backoff)
  end
end

-- At stop, the senders get up to FLUSH_DEADLINE seconds to send what is in the WAL
-- (Prometheus's flush_deadline); what is left is sent after the next start.
local FLUSH_DEADLINE = 5

function Instance:flush()
  if push_endpoint.drain(self, FLUSH_DEADLINE, function(ep)
    ep.reader:stats()
    return unread(self, ep) > 0 or ep.rstats.pending_chunks > 0
  end) then
    return
  end
  self.ctx.log:warn("stopping with samples not yet sent; they are sent after the next start",
    { flush_deadline = duration.format(FLUSH_DEADLINE) })
end

function Instance:stop()
  if scheduler.current() then -- a graceful stop runs in a task and may wait
    self:flush()
  end
  self.stuck_timer:close()
  self.remove_collect()
  self:stop_metadata()
  for _, ep in pairs(self.endpoints) do
    self:stop_endpoint(ep)
  end
  local synced, serr = self.wal:sync()
  if not synced then
    self.ctx.log:error("WAL fsync at stop failed", { err = serr })
  end
end

function Instance:debug_info()
  self:update_metrics()
  local eps = {}
  for name, ep in pairs(self.endpoints) do
    eps[#eps + 1] = {
      name = name, url = redact.url(ep.cfg.url), last_error = ep.last_error or "",
      samples_committed = tonumber(ep.rstats.samples_committed),
      committed_max_ts = tonumber(ep.rstats.committed_max_ts),
      shards = ep.sharder.shards, shards_desired = ep.sharder.desired,
      requests_in_flight = ep.gen.inflight, oldest_unsent_age_seconds = oldest_unsent_age(self, ep),
      stuck = ep.stuck or false,
    }
  end
  return {
    wal = { bytes = tonumber(self.stats.bytes), segments = tonumber(self.stats.segments),
      active_series = tonumber(self.stats.active_series), samples_appended = tonumber(self.stats.samples_appended),
      fsyncs = tonumber(self.stats.fsyncs) },
    endpoints = eps,
  }
end

return M
