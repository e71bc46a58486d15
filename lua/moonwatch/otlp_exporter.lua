--- moonwatch.otlp_exporter: what otelcol.exporter.otlp (gRPC) and otelcol.exporter.otlphttp
--- share, as the OpenTelemetry Collector's exporterhelper: the `client` block's common
--- arguments, the `retry_on_failure` and `sending_queue` blocks, the `input` export (an
--- otelcol consumer of traces), the sending queue and its consumers, retries with randomized
--- exponential backoff, Alloy's metric names, health and debug info. Each component gives the
--- transport: send(self, body, count) -> outcome ("sent" | "retry" | "permanent"), err, wait (the
--- server's throttle in seconds: the retry waits at least this long).
-- A span batch is encoded (C, moonwatch.native.otlp) when it arrives, so the queue holds request
-- bodies, not batches (a batch is valid only during append).
local otlp = require("moonwatch.native.otlp")
local traces = require("moonwatch.batch.traces")
local ffi_rt = require("moonwatch.ffi")
local metrics = require("moonwatch.metrics")
local receiver = require("moonwatch.receiver")
local scheduler = require("moonwatch.scheduler")
local duration = require("moonwatch.duration")

local M = {}

--- Failed attempts in a row after which the component reports itself unhealthy.
M.FAILING_AFTER = 3

--- Alloy's tls block of otelcol clients (the parts moonwatch has; see the README).
M.TLS = { args = {
  insecure = { type = "bool", default = false,
    doc = "Disables TLS (otelcol.exporter.otlp: plaintext HTTP/2, h2c)." },
  insecure_skip_verify = { type = "bool", default = false, doc = "Ignores insecure server TLS certificates." },
  ca_file = { type = "string", doc = "Path to the CA file." },
  ca_pem = { type = "string", doc = "CA PEM-encoded text to validate the server with." },
  cert_file = { type = "string", doc = "Path to the TLS certificate." },
  cert_pem = { type = "string", doc = "Certificate PEM-encoded text for client authentication." },
  key_file = { type = "string", doc = "Path to the TLS certificate key." },
  key_pem = { type = "secret", doc = "Key PEM-encoded text for client authentication." },
  min_version = { type = "string", default = "1.2", enum = { "1.0", "1.1", "1.2", "1.3" },
    doc = "Minimum acceptable TLS version." },
  server_name = { type = "string", doc = "Verifies the hostname of server certificates when set." },
}, exclusive = { { "ca_pem", "ca_file" }, { "cert_pem", "cert_file" }, { "key_pem", "key_file" } } }

--- The client arguments both exporters have (endpoint's doc and timeout's default differ).
function M.client_args(endpoint_doc, timeout)
  return {
    endpoint = { type = "string", required = true, doc = endpoint_doc },
    compression = { type = "string", default = "gzip", enum = { "gzip", "none", "" },
      doc = "Compression of the requests: \"gzip\" or \"none\" (zstd, snappy... are not supported)." },
    headers = { type = "map", of = { type = "secret" }, default = {}, sensitive = true,
      doc = "Additional headers to send with the requests (secrets: never shown)." },
    timeout = { type = "duration", default = timeout, positive = true, doc = "Time to wait before marking a request as failed." },
    tls = { type = "block", doc = "TLS settings.", schema = M.TLS },
  }
end

M.RETRY = { type = "block", doc = "Retries of failed requests.", schema = { args = {
  enabled = { type = "bool", default = true, doc = "Retry failed requests." },
  initial_interval = { type = "duration", default = "5s", positive = true, doc = "Time to wait before the first retry." },
  max_interval = { type = "duration", default = "30s", positive = true, doc = "Maximum time to wait between retries." },
  max_elapsed_time = { type = "duration", default = "5m", min = 0,
    doc = "Maximum time spent retrying a batch before it is dropped (0: retry forever)." },
  multiplier = { type = "number", default = 1.5, min = 1, doc = "Factor by which the wait grows after each retry." },
  randomization_factor = { type = "number", default = 0.5, min = 0, max = 1,
    doc = "Randomness of the wait (the wait is within interval * (1 +- factor))." },
}, validate = function(b)
  if b.initial_interval > b.max_interval then
    return "initial_interval must not be greater than max_interval"
  end
end } }

M.QUEUE = { type = "block", doc = "The in-memory queue of requests waiting to be sent.", schema = { args = {
  enabled = { type = "bool", default = true,
    doc = "Queue requests; disabled, a batch is sent only when a consumer is idle (else refused and counted)." },
  num_consumers = { type = "uint", default = 10, min = 1, max = 1000, doc = "Requests sent at the same time." },
  queue_size = { type = "uint", default = 1000, min = 1, doc = "Requests (batches) the queue holds; more are refused." },
} } }

M.EXPORTS = {
  input = { type = "trace_receiver",
    doc = "An otelcol consumer other components send telemetry to (traces: e.g. the tracing block's write_to)." },
}

local family
local function component_metrics(id)
  if not family then
    local reg, l = metrics.default, { "component_id" }
    family = {
      sent = reg:counter("otelcol_exporter_sent_spans_total",
        "Number of spans successfully sent to destination.", l),
      failed = reg:counter("otelcol_exporter_send_failed_spans_total",
        "Number of spans in failed attempts to send to destination.", l),
      enqueue_failed = reg:counter("otelcol_exporter_enqueue_failed_spans_total",
        "Number of spans failed to be added to the sending queue.", l),
      queue_size = reg:gauge("otelcol_exporter_queue_size", "Current size of the retry queue (in batches).", l),
      queue_capacity = reg:gauge("otelcol_exporter_queue_capacity", "Fixed capacity of the retry queue (in batches).", l),
    }
  end
  return {
    sent = family.sent:with(id), failed = family.failed:with(id), enqueue_failed = family.enqueue_failed:with(id),
    queue_size = family.queue_size:with(id), queue_capacity = family.queue_capacity:with(id),
  }
end

local Instance = {}
Instance.__index = Instance

--- A new exporter instance of component ctx; transport = { send = fn(self, body, count), prepare =
--- fn(self, args) } (prepare makes the client and URL from the arguments, at new and update).
function M.new(ctx, args, transport)
  local self = setmetatable({ ctx = ctx, transport = transport, queue = {}, qhead = 1, qtail = 0, idle = {},
    workers = {}, nworkers = 0, failures = 0, sent = 0, failed = 0, refused = 0 }, Instance)
  self.m = component_metrics(ctx.id)
  ctx:export({ input = receiver.traces(ctx.id, function(_, b)
    self:append(b)
  end) })
  self:configure(args)
  return self
end

function Instance:configure(args)
  self.args = args
  self.transport.prepare(self, args)
  local q = args.sending_queue
  self.capacity = q.enabled and q.queue_size or 0
  self.m.queue_capacity:set(self.capacity)
  -- consumers: num_consumers tasks (more are started; extra ones end after their request)
  self.want = q.num_consumers
  for _ = self.nworkers + 1, self.want do
    self:start_worker()
  end
end

function Instance:start_worker()
  local w = {}
  self.workers[w] = true
  self.nworkers = self.nworkers + 1
  w.task = self.ctx:spawn(function()
    self:work(w)
  end, "otelcol exporter consumer")
end

function Instance:qlen()
  return self.qtail - self.qhead + 1
end

-- Takes a span batch: encoded at once, queued (or refused, counted, when the queue is full).
function Instance:append(b)
  local n = traces.len(b)
  if n == 0 then
    return
  end
  local idle = next(self.idle)
  if self.stopped or (self:qlen() >= self.capacity and not (idle and self:qlen() == 0)) then
    self.m.enqueue_failed:add(n)
    self.refused = self.refused + n
    return
  end
  local body, err = self.transport.encode(self, b)
  if not body then
    self.ctx.log:error("encoding spans failed; dropped", { spans = n, err = err })
    self.m.failed:add(n)
    return
  end
  self.qtail = self.qtail + 1
  self.queue[self.qtail] = { body = body, count = n }
  self.m.queue_size:set(self:qlen())
  if idle then
    self.idle[idle] = nil
    scheduler.wake(idle)
  end
end

-- A consumer: takes requests off the queue and sends each until it is sent, refused for good,
-- or out of retries.
function Instance:work(w)
  while self.workers[w] do
    if self.nworkers > self.want then
      self.workers[w] = nil
      self.nworkers = self.nworkers - 1
      return
    end
    if self:qlen() == 0 then
      local me = scheduler.current()
      self.idle[me] = true
      local ok = pcall(scheduler.suspend)
      self.idle[me] = nil
      if not ok then
        return
      end
    else
      local req = self.queue[self.qhead]
      self.queue[self.qhead] = nil
      self.qhead = self.qhead + 1
      self.m.queue_size:set(self:qlen())
      w.req = req -- in flight: a stop counts it as dropped
      self:deliver(req)
      w.req = nil
    end
  end
end

-- The wait before retry number k (1-based): initial_interval * multiplier^(k-1), at most
-- max_interval, randomized by +- randomization_factor (backoff.ExponentialBackOff's).
local function backoff_wait(r, k)
  local base = math.min(r.initial_interval * r.multiplier ^ (k - 1), r.max_interval)
  local delta = r.randomization_factor * base
  return base - delta + math.random() * 2 * delta
end
M.backoff_wait = backoff_wait

function Instance:deliver(req)
  local r = self.args.retry_on_failure
  local started, k = scheduler.now(), 0
  while true do
    local outcome, err, wait = self.transport.send(self, req.body, req.count)
    if outcome == "sent" then
      self.m.sent:add(req.count)
      self.sent = self.sent + req.count
      if self.failures >= M.FAILING_AFTER then
        self.ctx:set_health("healthy", "sending again")
      end
      self.failures, self.last_error = 0, nil
      return
    end
    self.failures = self.failures + 1
    self.last_error = err
    if self.failures == M.FAILING_AFTER then
      self.ctx:set_health("unhealthy", string.format("%d requests in a row failed, last: %s", self.failures, err))
    end
    k = k + 1
    -- as exporterhelper: a server's throttle (Retry-After) lengthens the backoff, never shortens it
    local delay = math.max(backoff_wait(r, k), wait or 0)
    local give_up = outcome ~= "retry" or not r.enabled
      or (r.max_elapsed_time > 0 and scheduler.now() - started + delay > r.max_elapsed_time)
    if give_up then
      self.m.failed:add(req.count)
      self.failed = self.failed + req.count
      self.ctx.log:error("Exporting failed. Dropping data.", { err = err, dropped_items = req.count,
        reason = outcome ~= "retry" and "not retryable" or (r.enabled and "no more retries left" or "retries disabled") })
      return
    end
    self.ctx.log:info("Exporting failed. Will retry the request after interval.",
      { err = err, interval = duration.format(delay) })
    scheduler.sleep(delay)
  end
end

--- The requests not sent yet: those queued and those in flight (being sent or waiting to be
--- retried). Returns requests, spans.
function Instance:pending()
  local requests, spans = 0, 0
  for i = self.qhead, self.qtail do
    requests, spans = requests + 1, spans + self.queue[i].count
  end
  for w in pairs(self.workers) do
    if w.req then
      requests, spans = requests + 1, spans + w.req.count
    end
  end
  return requests, spans
end

--- At stop: waits up to seconds for the queued and in-flight requests to be sent, while the
--- endpoint is not failing.
function Instance:drain(seconds)
  local deadline = scheduler.now() + seconds
  while self:pending() > 0 and self.failures == 0 and scheduler.now() < deadline do
    scheduler.sleep(0.02)
  end
end

function Instance:update(args)
  self:configure(args)
end

--- At a stop (or a reload that removes the component), after up to 2 s of draining: what is still
--- queued or in flight is dropped, counted as failed (as the Collector's exporterhelper counts what
--- its shutdown interrupts) and logged in one line.
function Instance:stop()
  if scheduler.current() then
    self:drain(2)
  end
  self.stopped = true -- what still arrives is refused and counted (enqueue_failed), as a stopped queue
  local requests, spans = self:pending()
  if requests > 0 then
    self.m.failed:add(spans)
    self.failed = self.failed + spans
    self.ctx.log:warn("stopping with spans not sent; they are dropped", { spans = spans, requests = requests })
  end
  self.queue, self.qhead, self.qtail = {}, 1, 0
  self.m.queue_size:set(0)
  for w in pairs(self.workers) do
    self.workers[w] = nil
    scheduler.cancel(w.task)
  end
  self.nworkers = 0
end

function Instance:debug_info()
  local _, pending = self:pending()
  return { queue_size = self:qlen(), queue_capacity = self.capacity, pending_spans = pending, sent_spans = self.sent,
    send_failed_spans = self.failed, enqueue_failed_spans = self.refused, last_error = self.last_error or "",
    failed_attempts_in_a_row = self.failures, endpoint = self.url_shown }
end

--- The TLS part of a moonwatch.http_client config from Alloy's tls block.
function M.tls_config(tls)
  tls = tls or {}
  return {
    ca_file = tls.ca_file, ca_pem = tls.ca_pem, cert_file = tls.cert_file, cert_pem = tls.cert_pem,
    key_file = tls.key_file, key_pem = tls.key_pem, server_name = tls.server_name,
    insecure_skip_verify = tls.insecure_skip_verify,
    min_version = "TLS" .. (tls.min_version or "1.2"):gsub("%.", ""),
  }
end

--- Monotonic seconds (for transports that time their requests).
M.now = ffi_rt.monotonic

--- Encodes a span batch for a transport (json: OTLP/JSON).
function M.encode(b, json)
  return otlp.encode(b, "moonwatch", (ffi_rt.version()), json)
end

return M
