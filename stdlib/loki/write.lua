--- loki.write: ships the log entries it receives to Loki push endpoints
--- (POST /loki/api/v1/push, snappy-compressed PushRequest protobufs of Loki's push.proto)
--- through a crash-safe queue on disk.
-- An append is acknowledged once its entries are in the queue (runtime/storage/logs_queue.c, a
-- layer on the record log, under <storage.path>/loki.write.<label>/). Each endpoint reads the
-- queue with its own cursor (runtime/loki/reader.c: one FFI call reads up to batch_size bytes
-- of entries and encodes them, streams grouped, external labels merged, into one request per
-- tenant, of up to 8 tenants), and sends its requests one after the other, committing its cursor
-- after those of a read are done: a receiver outage or a restart (SIGTERM or SIGKILL) loses
-- nothing that was appended; at most the requests of the read in flight are sent again.
--
-- A request is sent once it holds batch_size bytes (lines and structured metadata) or its
-- oldest entry waited batch_wait. 2xx: sent. 5xx, 429 (with retry_on_http_429) and network
-- errors: retried with exponential backoff and jitter from min_backoff_period to below
-- max_backoff_period (as Alloy's, dskit's backoff), max_backoff_retries attempts in all (0:
-- forever), then dropped and counted. Any other status
-- (4xx) is dropped and counted at once, as Alloy does (reason "ingester_error", "rate_limited"
-- for a 429 given up on).
--
-- An endpoint's queue_config is Alloy's, as far as it fits a queue on disk sent in order:
-- drain_timeout bounds the wait at stop, capacity is above what an endpoint holds in memory
-- anyway, min_shards > 1 and block_on_overflow = true are refused (see QUEUE_CONFIG).
--
-- The queue is bounded (the queue block, a moonwatch addition): segments every endpoint has
-- sent are removed at once; entries that waited longer than max_age, then the oldest while
-- the queue is over max_size, are removed even if unsent and counted as
-- loki_write_dropped_entries_total{reason="too_old"|"queue_full"}.
local ffi_rt = require("moonwatch.ffi")
local logs = require("moonwatch.batch.logs")
local native_loki = require("moonwatch.native.loki")
local httpconfig = require("moonwatch.httpconfig")
local push_endpoint = require("moonwatch.push_endpoint")
local tracing = require("moonwatch.tracing")
local relabel = require("moonwatch.relabel")
local metrics = require("moonwatch.metrics")
local scheduler = require("moonwatch.scheduler")
local duration = require("moonwatch.duration")
local redact = require("moonwatch.redact")
local receiver = require("moonwatch.receiver")

local M = {
  name = "loki.write",
  doc = "Sends received log entries to Loki push endpoints through a queue on disk.",
}

-- Alloy's per-endpoint queue_config (experimental in Alloy): its in-memory queue of batches,
-- per shard. moonwatch's buffer is the queue on disk every endpoint reads (the queue block), read
-- by one sender per endpoint: what Alloy's fields ask for is honoured where it means something
-- here, refused where it cannot be.
local QUEUE_CONFIG = {
  args = {
    capacity = { type = "bytes", default = "10MiB", min = 1,
      doc = "Alloy: bytes of batches each shard may hold in memory (a bound of its memory use). moonwatch keeps at"
        .. " most one request (batch_size) per endpoint in memory, below any capacity; what waits is in the queue"
        .. " on disk (the queue block's max_size bounds it)." },
    min_shards = { type = "int", default = 1, min = 0,
      check = function(n)
        if n > 1 then
          return nil, "moonwatch sends one request at a time per endpoint, in the queue's order, so that its"
            .. " cursor commits only what was sent: only 1 (or 0, which Alloy takes as 1) is supported"
        end
      end,
      doc = "Concurrent senders of the endpoint: only 1 (moonwatch sends the queue in order, one request at a time)." },
    drain_timeout = { type = "duration", default = "5s", min = 0,
      doc = "Longest the component's stop waits for the endpoint to send what is queued, while its requests"
        .. " succeed (--shutdown.timeout bounds the whole stop). What is left stays in the queue and is sent after"
        .. " the next start. moonwatch's default: 5s (Alloy's 15s is past moonwatch's 10s shutdown timeout; Alloy"
        .. " loses what it could not send, moonwatch keeps it)." },
    block_on_overflow = { type = "bool",
      check = function(v)
        if v then
          return nil, "moonwatch's queue is on disk and never blocks the components sending to it: past the queue"
            .. " block's max_size it drops the oldest entries (loki_write_dropped_entries_total{reason=\"queue_full\"});"
            .. " remove block_on_overflow, or set it to false"
        end
      end,
      doc = "Only false (moonwatch's queue never blocks: past the queue block's max_size it drops the oldest"
        .. " entries, counted)." },
  },
}

local ENDPOINT = {
  args = httpconfig.add_args({
    url = { type = "string", required = true, doc = "Full URL to send logs to (e.g. http://loki:3100/loki/api/v1/push)." },
    name = { type = "string",
      doc = "Name of the endpoint in metrics, logs and its queue cursor (default: a hash of the url)." },
    tenant_id = { type = "string", doc = "The tenant ID used by default to push logs (X-Scope-OrgID)." },
    headers = { type = "map", of = { type = "secret" }, default = {}, sensitive = true,
      doc = "Extra headers to send (their values are secrets: never shown)." },
    batch_wait = { type = "duration", default = "1s", positive = true,
      doc = "Maximum amount of time to wait before sending a batch." },
    batch_size = { type = "bytes", default = "1MiB", min = 1, max = 64 * 1024 * 1024,
      doc = "Maximum batch size (lines and structured metadata, bytes) to accumulate before sending (at most"
        .. " 64MiB; a longer entry is sent alone)." },
    remote_timeout = { type = "duration", default = "10s", positive = true, doc = "Timeout for requests made to the URL." },
    min_backoff_period = { type = "duration", default = "500ms", positive = true,
      doc = "Initial backoff time between retries: the first wait is drawn between it and twice it, each next"
        .. " range is twice the one before." },
    max_backoff_period = { type = "duration", default = "5m", positive = true,
      doc = "Maximum backoff time between retries (a Retry-After header too is cut to it)." },
    max_backoff_retries = { type = "uint", default = 10,
      doc = "Maximum number of attempts of a request before its entries are dropped, as Alloy counts them: 10"
        .. " is 10 attempts, 9 waits (0: retry forever)." },
    retry_on_http_429 = { type = "bool", default = true, doc = "Retry when an HTTP 429 status code is received." },
    encoding = { type = "string", default = "protobuf", enum = { "protobuf", "json" },
      doc = "moonwatch: the request body: \"protobuf\" (snappy-compressed PushRequest, as Alloy sends) or"
        .. " \"json\" (Loki's JSON push body, readable: for debugging)." },
    queue_config = { type = "block", schema = QUEUE_CONFIG,
      doc = "Alloy's queue of the endpoint (capacity, min_shards, drain_timeout, block_on_overflow), as moonwatch"
        .. " can honour it." },
  }),
  exclusive = { httpconfig.AUTH_EXCLUSIVE },
  validate = push_endpoint.validate_endpoint,
}

M.args = {
  endpoint = { type = "block", repeated = true, default = {}, schema = ENDPOINT, doc = "Location to send logs to." },
  external_labels = { type = "map", default = {},
    doc = "Labels to add to logs sent over the network (a stream's own label of the same name wins)." },
  max_streams = { type = "uint", default = 0,
    doc = "Maximum number of streams in one request (0: no limit); a request ends before the entry of one more"
      .. " stream, which goes in the next one (Alloy drops it: moonwatch loses nothing)." },
  queue = { type = "block", doc = "moonwatch: the queue on disk every entry goes through.", schema = { args = {
    max_size = { type = "bytes", default = "256MiB", min = 65536,
      doc = "Bytes the queue may hold; past it the oldest entries are dropped, sent or not"
        .. " (loki_write_dropped_entries_total{reason=\"queue_full\"})." },
    max_age = { type = "duration", default = "24h", min = 0,
      doc = "Entries that waited this long in the queue are dropped, sent or not"
        .. " (loki_write_dropped_entries_total{reason=\"too_old\"}); 0: no age bound." },
    fsync = { type = "string", default = "never", enum = { "never", "interval", "always" },
      doc = "When to fsync. Appends survive a crash of the process with every policy; only always survives"
        .. " power loss at every moment; interval fsyncs on a worker thread." },
    fsync_interval = { type = "duration", default = "10s", positive = true, doc = "fsync period with fsync = \"interval\"." },
  } } },
}

M.exports = {
  receiver = { type = "log_receiver", doc = "A value other components can use to send log entries to." },
}

-- Consecutive failed attempts before the component reports the endpoint unhealthy.
local FAILING_AFTER = 3
-- How often the queue is truncated (sent segments, the age bound).
local TRUNCATE_EVERY = 5

local KIB, MIB = 1024, 1024 * 1024
-- Alloy's buckets of loki_write_request_size_bytes.
local REQUEST_SIZE_BUCKETS = { KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, 512 * KIB, MIB, 2 * MIB, 4 * MIB, 8 * MIB,
  16 * MIB, 20 * MIB }

local function component_metrics()
  local reg = metrics.default
  local ht = { "component_id", "host", "tenant" }
  local htr = { "component_id", "host", "tenant", "reason" }
  local c = { "component_id" }
  return {
    encoded_bytes = reg:counter("loki_write_encoded_bytes_total", "Number of bytes encoded and ready to send.", ht),
    sent_bytes = reg:counter("loki_write_sent_bytes_total", "Number of bytes sent.", ht),
    dropped_bytes = reg:counter("loki_write_dropped_bytes_total",
      "Number of bytes dropped because failed to be sent to the ingester after all retries.", htr),
    sent_entries = reg:counter("loki_write_sent_entries_total", "Number of log entries sent to the ingester.", ht),
    dropped_entries = reg:counter("loki_write_dropped_entries_total",
      "Number of log entries dropped because failed to be sent to the ingester after all retries.", htr),
    duration = reg:histogram("loki_write_request_duration_seconds", "Duration of send requests.",
      { "component_id", "status_code", "host", "tenant" }),
    retries = reg:counter("loki_write_batch_retries_total", "Number of times batches has had to be retried.", ht),
    request_size = reg:histogram("loki_write_request_size_bytes", "Number of bytes for requests.", ht,
      REQUEST_SIZE_BUCKETS),
    pending = reg:gauge("loki_write_pending_entries",
      "moonwatch: entries in the queue this endpoint has not sent yet.", ht),
    queue_bytes = reg:gauge("loki_write_queue_bytes", "moonwatch: bytes of the queue on disk.", c),
    appended = reg:counter("loki_write_queue_entries_appended_total",
      "moonwatch: log entries appended to the queue.", c),
    corruptions = reg:counter("loki_write_queue_corruptions_repaired_total",
      "moonwatch: torn or corrupt queue records cut at open or skipped.", c),
  }
end

local Instance = {}
Instance.__index = Instance

-- Alloy's drop reasons: their counters exist at 0 for each host and tenant from the start, so
-- that rate() and increase() see the first drop.
local REASONS = { "ingester_error", "rate_limited", "stream_limited", "line_too_long" }

local function init_drops(self, host, tenant)
  for _, reason in ipairs(REASONS) do
    self.m.dropped_entries:with(self.ctx.id, host, tenant, reason):add(0)
    self.m.dropped_bytes:with(self.ctx.id, host, tenant, reason):add(0)
  end
end

-- host[:port] of a URL, without credentials: the host label of Alloy's metrics.
local function url_host(url)
  local auth = url:match("^%a[%w+.-]*://([^/?#]*)") or ""
  return auth:gsub("^.*@", "")
end

M.validate = push_endpoint.validate_args

-- Segments of a queue bounded to max_size: small enough that the size bound removes little at once.
local function segment_size(max_size)
  return math.max(64 * 1024, math.min(16 * 1024 * 1024, math.floor(max_size / 16)))
end

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, endpoints = {}, m = component_metrics(),
    seen = { appended = 0, corruptions = 0 } }, Instance)
  local q = push_endpoint.open_storage(ctx, "queue", native_loki.open_queue, { fsync = args.queue.fsync,
    segment_size = segment_size(args.queue.max_size) })
  self.queue = q
  local st = q:stats()
  if st.replayed_entries > 0 then
    ctx.log:info("entries queued before the restart are sent", { entries = tonumber(st.replayed_entries) })
  end
  ctx:export({ receiver = receiver.logs(ctx.id, function(_, b)
    self:append(b)
  end) })
  self:configure(args)
  self.health_timer = ctx:timer(1, 1, function()
    self:refresh_health()
  end, "loki.write health")
  self.truncate_timer = ctx:timer(TRUNCATE_EVERY, TRUNCATE_EVERY, function()
    self:truncate()
  end, "loki.write queue truncate")
  self.remove_collect = metrics.default:on_collect(function()
    self:update_metrics()
  end)
  return self
end

function Instance:configure(args)
  self.args = args
  local ext = relabel.encode(args.external_labels)
  push_endpoint.reconcile(self, args.endpoint, ext, function(ep, e)
    return ep.cfg.url ~= e.url or (ep.cfg.tenant_id or "") ~= (e.tenant_id or "")
  end, function(ep, e)
    ep.reader:configure(e.batch_size, args.max_streams, ext, e.encoding)
  end)
  if self.sync_timer then
    self.sync_timer:close()
    self.sync_timer = nil
  end
  if args.queue.fsync == "interval" then
    self.sync_timer = self.ctx:timer(args.queue.fsync_interval, args.queue.fsync_interval, function()
      local ok, err = self.queue:sync_start()
      if not ok then
        self.ctx.log:error("queue fsync failed", { err = err })
      end
    end, "loki.write fsync")
  end
end

function Instance:start_endpoint(name, e, ext)
  local reader, rerr = self.queue:reader(name)
  if not reader then
    error(string.format("endpoint %s: %s", name, rerr), 0)
  end
  reader:configure(e.batch_size, self.args.max_streams, ext, e.encoding)
  local host, tenant = url_host(e.url), e.tenant_id or ""
  local m, id = self.m, self.ctx.id
  local ep = {
    name = name, cfg = e, reader = reader, client = push_endpoint.new_client(e), host = host, tenant = tenant,
    m = {
      encoded_bytes = m.encoded_bytes:with(id, host, tenant), sent_bytes = m.sent_bytes:with(id, host, tenant),
      sent_entries = m.sent_entries:with(id, host, tenant), retries = m.retries:with(id, host, tenant),
      pending = m.pending:with(id, host, tenant), request_size = m.request_size:with(id, host, tenant),
    },
    -- loop time since when unsent entries wait (nil: none known), bytes appended since the last read
    data_since = scheduler.now(), unread = math.huge, failures = 0, sent = 0, dropped = 0,
  }
  init_drops(self, host, tenant)
  local note = reader:note()
  if note ~= "" then
    self.ctx.log:warn("loki.write cursor damaged", { endpoint = name, err = note })
  end
  ep.task = self.ctx:spawn(function()
    self:run_endpoint(ep)
  end, "loki.write " .. name)
  return ep
end

function Instance.stop_endpoint(_, ep)
  push_endpoint.stop(ep)
end

-- tenant: the request's (an entry's __tenant_id__), labelling the metrics as Alloy's do; nil:
-- the endpoint's tenant_id.
function Instance:drop(ep, reason, entries, bytes, tenant)
  local id = self.ctx.id
  self.m.dropped_entries:with(id, ep.host, tenant or ep.tenant, reason):add(entries)
  self.m.dropped_bytes:with(id, ep.host, tenant or ep.tenant, reason):add(bytes)
  ep.dropped = ep.dropped + entries
end

-- The endpoint's counters for the tenant of a request (nil: the endpoint's tenant_id).
function Instance:tenant_metrics(ep, tenant)
  if not tenant or tenant == ep.tenant or tenant:find("%c") then -- the last is never sent
    return ep.m
  end
  ep.by_tenant = ep.by_tenant or {}
  local t = ep.by_tenant[tenant]
  if not t then
    local m, id = self.m, self.ctx.id
    t = { encoded_bytes = m.encoded_bytes:with(id, ep.host, tenant), sent_bytes = m.sent_bytes:with(id, ep.host, tenant),
      sent_entries = m.sent_entries:with(id, ep.host, tenant), retries = m.retries:with(id, ep.host, tenant),
      request_size = m.request_size:with(id, ep.host, tenant) }
    ep.by_tenant[tenant] = t
    init_drops(self, ep.host, tenant)
  end
  return t
end

-- Sleeps up to seconds, or until append() wakes the endpoint. false once the endpoint stops.
local wait = push_endpoint.wait

-- The endpoint's sender: reads a request out of the queue, waits for it to fill (batch_size)
-- or for batch_wait, sends it until it is done, commits, and so on.
function Instance:run_endpoint(ep)
  while not ep.stopped do
    local e = ep.cfg
    local req, err = ep.reader:next()
    ep.unread, ep.appended_at = req and req.bytes or 0, nil
    -- a queue the endpoint cannot read stops it: unhealthy until a read works again
    ep.read_error = req == nil and err or nil
    if req == nil then
      ep.last_error = "reading the queue: " .. err
      self.ctx.log:error("loki.write cannot read its queue", { endpoint = ep.name, err = err })
      if not wait(ep, 1) then
        return
      end
    elseif req == false then
      ep.data_since, ep.idle = nil, true
      local ok = wait(ep, self.flushing and 0.02 or 3600)
      ep.idle = false
      if not ok then
        return
      end
    else
      ep.data_since = ep.data_since or scheduler.now()
      local waited = scheduler.now() - ep.data_since
      if not req.full and waited < e.batch_wait and not self.flushing then
        -- not full yet: read it again when full (append wakes us) or at batch_wait
        ep.reader:rewind()
        if not wait(ep, e.batch_wait - waited) then
          return
        end
      else
        -- one request per tenant of what was read; the cursor moves once they are all done
        for _, part in ipairs(req.parts) do
          self:tenant_metrics(ep, part.tenant).encoded_bytes:add(#part.body)
          self:send(ep, part)
          if ep.stopped then
            return
          end
        end
        local ok, cerr = ep.reader:commit()
        if not ok then
          self.ctx.log:warn("saving the loki.write cursor failed", { endpoint = ep.name, err = cerr })
        end
        -- the next batch waits from its first entry's arrival (during the send, or now if more
        -- was left behind a full request), as Alloy's batch timer starts with its first entry
        ep.data_since = req.full and scheduler.now() or ep.appended_at
      end
    end
  end
end

-- POSTs one request, for tenant (the entries' __tenant_id__, set by loki.process's stage.tenant)
-- or else the endpoint's tenant_id. "sent"; "retry", err, wait (5xx, 429 when retried, network
-- errors; wait: the response's Retry-After up to max_backoff_period, else nil); "rejected", err,
-- reason (any other status).
function Instance:post(ep, body, tenant, span)
  local cfg = ep.cfg
  local headers = { ["Content-Type"] = cfg.encoding == "json" and "application/json" or "application/x-protobuf" }
  tenant = tenant or cfg.tenant_id
  if tenant and tenant ~= "" then
    headers["X-Scope-OrgID"] = tenant
  end
  local outcome, why, pause, status, seconds = push_endpoint.post(ep, body, headers, nil, cfg.retry_on_http_429,
    span)
  self.m.duration:with(self.ctx.id, tostring(status), ep.host, tenant or ""):observe(seconds)
  if outcome == "retry" then
    return outcome, why, pause and math.min(pause, cfg.max_backoff_period)
  elseif outcome == "rejected" then
    return outcome, why, status == 429 and "rate_limited" or "ingester_error"
  end
  return outcome, why, pause
end

-- Sends one request until it is accepted, rejected or out of retries.
function Instance:send(ep, req)
  local e = ep.cfg
  local backoff = push_endpoint.new_backoff(e.min_backoff_period, e.max_backoff_period, e.max_backoff_retries)
  if req.tenant and req.tenant:find("%c") then
    -- no HTTP request can carry it (a header value): sending would fail, retried forever
    local why = string.format("invalid tenant %q (__tenant_id__): a control character cannot be sent in"
      .. " X-Scope-OrgID", req.tenant)
    ep.failures, ep.last_error = ep.failures + 1, why
    self:drop(ep, "ingester_error", req.entries, #req.body)
    self.ctx.log:error("final error sending batch; its entries are dropped", { endpoint = ep.name, err = why,
      entries = req.entries })
    return
  end
  self:tenant_metrics(ep, req.tenant).request_size:observe(#req.body)
  while not ep.stopped do
    local span = tracing.start("loki.write", nil, tracing.CLIENT)
    if span.sampled then
      span:set("component_id", self.ctx.id)
      span:set("entries", req.entries)
      span:set("retries", backoff.failures)
    end
    local outcome, why, extra = self:post(ep, req.body, req.tenant, span)
    if ep.stopped then
      return
    end
    if outcome == "sent" then
      self:tenant_metrics(ep, req.tenant).sent_entries:add(req.entries)
      self:tenant_metrics(ep, req.tenant).sent_bytes:add(#req.body)
      ep.sent = ep.sent + req.entries
      ep.failures, ep.last_error = 0, nil
      return
    end
    ep.failures = ep.failures + 1
    ep.last_error = why
    if outcome == "rejected" then
      self:drop(ep, extra, req.entries, #req.body, req.tenant)
      self.ctx.log:error("final error sending batch; its entries are dropped", { endpoint = ep.name,
        err = why, entries = req.entries })
      return
    end
    -- as Alloy's client: every failed attempt counts as a retry, the last one too, and
    -- max_backoff_retries failed attempts in all give the request up
    self:tenant_metrics(ep, req.tenant).retries:add(1)
    local delay = backoff:next()
    if not delay then
      self:drop(ep, why:match("status 429") and "rate_limited" or "ingester_error", req.entries, #req.body,
        req.tenant)
      self.ctx.log:error("final error sending batch after all retries; its entries are dropped",
        { endpoint = ep.name, err = why, entries = req.entries, attempts = backoff.failures })
      return
    end
    delay = extra or delay
    self.ctx.log:warn("error sending batch, will retry", { endpoint = ep.name, err = why,
      retry_in = duration.format(delay) })
    if not pcall(scheduler.sleep, delay) or ep.stopped then -- not ep.waiting: appends do not cut it short
      return
    end
  end
end

-- A batch the queue could not take (a full disk, an I/O error) is lost for every endpoint:
-- counted as dropped (reason "queue_append_failed") and logged at most once a minute.
function Instance:append(b)
  local n = logs.len(b)
  if n == 0 then
    return
  end
  local now = ffi_rt.time_now()
  local ok, why, written = self.queue:append(b, math.floor(now * 1000))
  if not ok then
    if not written then
      for _, ep in pairs(self.endpoints) do
        self:drop(ep, "queue_append_failed", n, logs.bytes(b))
      end
    end
    self.append_error = why
    if not self.append_logged or scheduler.now() - self.append_logged >= 60 then
      self.append_logged = scheduler.now()
      self.ctx.log:error(written and "queue fsync failed" or "queue append failed; the entries are dropped",
        { err = why, entries = n })
    end
    if not written then
      return
    end
  else
    self.append_error = nil
  end
  local st = self.queue:stats()
  if st.bytes > self.args.queue.max_size then
    self:truncate()
  end
  local bytes = logs.bytes(b)
  local now_loop = scheduler.now()
  for _, ep in pairs(self.endpoints) do
    ep.data_since = ep.data_since or now_loop
    ep.appended_at = ep.appended_at or now_loop
    ep.unread = ep.unread + bytes
    if ep.waiting and (ep.idle or ep.unread >= ep.cfg.batch_size) then
      scheduler.wake(ep.waiting)
    end
  end
end

-- Entries the queue's bounds removed before an endpoint sent them, since the last call: counted
-- as dropped for reason.
function Instance:bound_drops(reason)
  for _, ep in pairs(self.endpoints) do
    if ep.reader then
      local dropped = tonumber(ep.reader:stats().entries_dropped)
      if dropped > (ep.bound_dropped or 0) then
        self:drop(ep, reason, dropped - (ep.bound_dropped or 0), 0)
        self.ctx.log:warn("queue bound reached; unsent entries dropped", { endpoint = ep.name, reason = reason,
          entries = dropped - (ep.bound_dropped or 0) })
      end
      ep.bound_dropped = dropped
    end
  end
end

-- Removes what every endpoint sent, then what waited past max_age (too_old), then the oldest
-- while over max_size (queue_full): two passes so each drop is counted under its reason.
function Instance:truncate()
  local q = self.args.queue
  local now = math.floor(ffi_rt.time_now() * 1000)
  local ok, err = self.queue:truncate(now, math.floor(q.max_age * 1000), 0)
  self:bound_drops("too_old")
  if ok then
    ok, err = self.queue:truncate(now, 0, q.max_size)
    self:bound_drops("queue_full")
  end
  if not ok then
    self.ctx.log:error("queue truncation failed", { err = err })
  end
  self:update_metrics()
end

-- Adds to counter{component_id} what a stats key grew since the last update.
local function add_delta(self, counter, key, value)
  local d = value - self.seen[key]
  if d > 0 then
    counter:add(d)
  end
  self.seen[key] = value
end

function Instance:update_metrics()
  local m, st, id = self.m, self.queue:stats(), self.ctx.id
  add_delta(self, m.appended:with(id), "appended", tonumber(st.entries_appended))
  add_delta(self, m.corruptions:with(id), "corruptions", tonumber(st.corruptions))
  m.queue_bytes:with(id):set(tonumber(st.bytes))
  for _, ep in pairs(self.endpoints) do
    if ep.reader then
      ep.m.pending:set(tonumber(ep.reader:stats().pending))
    end
  end
end

-- Unhealthy while an endpoint fails FAILING_AFTER attempts in a row (until one succeeds) or
-- cannot read the queue, or the queue refuses appends.
function Instance:refresh_health()
  local problems = push_endpoint.failing(self, FAILING_AFTER)
  local names = {}
  for name, ep in pairs(self.endpoints) do
    if ep.read_error then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  for _, name in ipairs(names) do
    problems[#problems + 1] = string.format("endpoint %s: reading the queue: %s", name,
      self.endpoints[name].read_error)
  end
  if self.append_error then
    problems[#problems + 1] = "queue appends failing: " .. self.append_error
  end
  push_endpoint.report_health(self, problems)
end

function Instance:update(args)
  self:configure(args)
end

-- At stop, each endpoint gets its queue_config.drain_timeout to send what is queued (while it
-- does not fail); a request is resent when the endpoint restarts (at-least-once), what is left is
-- sent after the next start.
function Instance:flush()
  local longest, since = 0, scheduler.now()
  for _, ep in pairs(self.endpoints) do
    longest = math.max(longest, ep.cfg.queue_config.drain_timeout)
  end
  local function pending(ep)
    return ep.reader and ep.reader:stats().pending > 0
  end
  if push_endpoint.drain(self, longest, function(ep)
    return pending(ep) and ep.failures == 0 and scheduler.now() - since < ep.cfg.queue_config.drain_timeout
  end) then
    return
  end
  for _, ep in pairs(self.endpoints) do
    if pending(ep) then
      self.ctx.log:warn("stopping with entries not yet sent; they are sent after the next start",
        { endpoint = ep.name, drain_timeout = duration.format(ep.cfg.queue_config.drain_timeout) })
    end
  end
end

function Instance:stop()
  if scheduler.current() then
    self:flush()
  end
  self.health_timer:close()
  self.truncate_timer:close()
  if self.sync_timer then
    self.sync_timer:close()
  end
  self.remove_collect()
  for _, ep in pairs(self.endpoints) do
    self:stop_endpoint(ep)
  end
  self.queue:close()
end

function Instance:debug_info()
  self:update_metrics()
  local st = self.queue:stats()
  local eps = {}
  for name, ep in pairs(self.endpoints) do
    local rs = ep.reader and ep.reader:stats()
    eps[#eps + 1] = { name = name, url = redact.url(ep.cfg.url), tenant_id = ep.tenant, last_error = ep.last_error or "",
      pending_entries = rs and tonumber(rs.pending) or 0, sent_entries = ep.sent, dropped_entries = ep.dropped,
      failed_attempts_in_a_row = ep.failures }
  end
  table.sort(eps, function(a, b)
    return a.name < b.name
  end)
  return {
    queue = { bytes = tonumber(st.bytes), segments = tonumber(st.segments), entries = tonumber(st.entries),
      entries_appended = tonumber(st.entries_appended), dropped_too_old = tonumber(st.dropped_too_old),
      dropped_queue_full = tonumber(st.dropped_full), fsyncs = tonumber(st.fsyncs) },
    endpoints = eps,
  }
end

return M
