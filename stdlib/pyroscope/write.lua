--- pyroscope.write: sends the profiles it receives to Pyroscope, as Alloy's pyroscope.write:
--- POST <url>/push.v1.PusherService/Push (the Connect protocol, unary, protobuf body: a
--- PushRequest of grafana/pyroscope's push.proto).
-- Each append (one scrape's profile, or a batch of them) becomes one PushRequest: a series per
-- profile with its labels (those starting with __ left out, but __name__ and __delta__) and the
-- external labels (which win). Every endpoint gets every request: it waits in the endpoint's
-- queue in memory (a moonwatch addition, so a slow endpoint never holds up the scrapes: at most
-- MAX_QUEUE requests and queue.max_size bytes; past them the oldest waiting is dropped and
-- counted; at a stop, or when a reload removes the endpoint or changes its URL, what is left is
-- dropped, counted and logged) and is sent with retries as
-- Alloy retries: Connect codes deadline_exceeded, unknown, resource_exhausted, internal,
-- unavailable, data_loss and aborted (from the error body, else from the HTTP status: 400
-- internal, 429/502/503/504 unavailable, others unknown but 401 403 404) and network errors,
-- with exponential backoff and jitter from min_backoff_period to below max_backoff_period,
-- max_backoff_retries attempts in all (0: forever), as Alloy's (dskit's backoff); then the
-- request is dropped and counted.
local cjson = require("cjson")
local native = require("moonwatch.native.pyroscope")
local profiles = require("moonwatch.batch.profiles")
local httpconfig = require("moonwatch.httpconfig")
local push_endpoint = require("moonwatch.push_endpoint")
local metrics = require("moonwatch.metrics")
local scheduler = require("moonwatch.scheduler")
local redact = require("moonwatch.redact")
local receiver = require("moonwatch.receiver")
local duration = require("moonwatch.duration")

local M = {
  name = "pyroscope.write",
  doc = "Sends received profiles to Pyroscope (push.v1.PusherService/Push).",
}

--- Requests an endpoint keeps waiting in memory; past it the oldest is dropped.
M.MAX_QUEUE = 100
--- At a stop, how long the endpoints that are not failing get to send what is queued (the rest
--- is dropped and counted).
M.STOP_DRAIN = 2
--- How long a drop for a full queue keeps the component unhealthy.
M.QUEUE_DROP_HEALTH = 60
-- Consecutive failed attempts before the component reports the endpoint unhealthy.
local FAILING_AFTER = 3
local PUSH_PATH = "/push.v1.PusherService/Push"

local ENDPOINT = {
  args = httpconfig.add_args({
    url = { type = "string", required = true,
      doc = "The base URL of the Pyroscope server (requests go to <url>/push.v1.PusherService/Push)." },
    name = { type = "string", doc = "Name of the endpoint in logs and the debug info (default: a hash of the url)." },
    headers = { type = "map", of = { type = "secret" }, default = {}, sensitive = true,
      doc = "Extra headers to send (their values are secrets: never shown)." },
    remote_timeout = { type = "duration", default = "10s", positive = true, doc = "Timeout for requests made to the URL." },
    min_backoff_period = { type = "duration", default = "500ms", positive = true, doc = "Initial backoff time between retries." },
    max_backoff_period = { type = "duration", default = "5m", positive = true, doc = "Maximum backoff time between retries." },
    max_backoff_retries = { type = "uint", default = 10,
      doc = "Maximum number of attempts of a request before its profiles are dropped, as Alloy counts them: 10"
        .. " is 10 attempts, 9 waits (0: retry forever)." },
  }),
  exclusive = { httpconfig.AUTH_EXCLUSIVE },
  validate = push_endpoint.validate_endpoint,
}

M.args = {
  endpoint = { type = "block", repeated = true, default = {}, schema = ENDPOINT,
    doc = "Location to send profiles to." },
  external_labels = { type = "map", default = {}, doc = "Labels to add to profiles sent over the network." },
  queue = { type = "block", doc = "moonwatch: each endpoint's queue in memory (Alloy sends while the scrape waits).",
    schema = { args = {
      max_size = { type = "bytes", default = "64MiB", min = 65536,
        doc = "Bytes of push requests an endpoint's queue may hold (besides its bound of " .. M.MAX_QUEUE
          .. " requests); past it the oldest waiting requests are dropped"
          .. " (pyroscope_write_dropped_profiles_total{reason=\"queue_bytes\"}), never the one being sent. A"
          .. " request that cannot fit beside the one being sent is dropped itself (one larger than max_size is taken"
          .. " only into an empty queue)." },
    } } },
}

M.exports = {
  receiver = { type = "profile_receiver", doc = "A value other components can use to send profiles to." },
}

M.validate = push_endpoint.validate_args

-- Why profiles are dropped (the reason label of the dropped counters; moonwatch's, Alloy's have
-- none): the push failed for good (refused, or out of retries); the queue was full (MAX_QUEUE
-- requests) or over queue.max_size bytes; the endpoint stopped (a stop, or a reload that removed
-- it or changed its URL) with requests queued.
local REASONS = { "send_failed", "queue_full", "queue_bytes", "stopped" }

local function component_metrics()
  local reg, l = metrics.default, { "component_id", "endpoint" }
  local lr = { "component_id", "endpoint", "reason" }
  return {
    sent_bytes = reg:counter("pyroscope_write_sent_bytes_total", "Total number of compressed bytes sent to Pyroscope.", l),
    dropped_bytes = reg:counter("pyroscope_write_dropped_bytes_total",
      "Total number of compressed bytes dropped by Pyroscope.", lr),
    sent_profiles = reg:counter("pyroscope_write_sent_profiles_total", "Total number of profiles sent to Pyroscope.", l),
    dropped_profiles = reg:counter("pyroscope_write_dropped_profiles_total",
      "Total number of profiles dropped by Pyroscope.", lr),
    retries = reg:counter("pyroscope_write_retries_total", "Total number of retries to Pyroscope.", l),
    latency = reg:histogram("pyroscope_write_latency", "Write latency for sending profiles to pyroscope",
      { "component_id", "endpoint", "type" }),
  }
end

-- Headers a custom one may not add: the body is sent as it is.
local RESERVED = { ["content-encoding"] = true }
-- Connect codes Alloy retries (shouldRetry).
local RETRY = { deadline_exceeded = true, unknown = true, resource_exhausted = true, internal = true,
  unavailable = true, data_loss = true, aborted = true }
-- The Connect code of an HTTP status without an error body (the Connect protocol's table).
local function status_code(status)
  if status == 400 then
    return "internal"
  elseif status == 401 then
    return "unauthenticated"
  elseif status == 403 then
    return "permission_denied"
  elseif status == 404 then
    return "unimplemented"
  elseif status == 429 or status == 502 or status == 503 or status == 504 then
    return "unavailable"
  end
  return "unknown"
end

local Instance = {}
Instance.__index = Instance

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, endpoints = {}, m = component_metrics() }, Instance)
  ctx:export({ receiver = receiver.profiles(ctx.id, function(_, b)
    self:append(b)
  end) })
  self:configure(args)
  self.health_timer = ctx:timer(1, 1, function()
    self:refresh_health()
  end, "pyroscope.write health")
  return self
end

function Instance:configure(args)
  self.args = args
  push_endpoint.reconcile(self, args.endpoint, nil, function(ep, e)
    return ep.cfg.url ~= e.url
  end, function() end)
end

function Instance:start_endpoint(name, e)
  local label = redact.url(e.url)
  local m, id = self.m, self.ctx.id
  local ep = { name = name, cfg = e, client = push_endpoint.new_client(e), queue = {}, queued_bytes = 0, failures = 0,
    sent = 0, dropped = 0, m = {
      sent_bytes = m.sent_bytes:with(id, label), dropped_bytes = {}, sent_profiles = m.sent_profiles:with(id, label),
      dropped_profiles = {}, retries = m.retries:with(id, label), label = label,
    } }
  -- every reason's counters exist at 0 from the start (rate() sees a first drop)
  for _, reason in ipairs(REASONS) do
    ep.m.dropped_bytes[reason] = m.dropped_bytes:with(id, label, reason)
    ep.m.dropped_bytes[reason]:add(0)
    ep.m.dropped_profiles[reason] = m.dropped_profiles:with(id, label, reason)
    ep.m.dropped_profiles[reason]:add(0)
  end
  ep.task = self.ctx:spawn(function()
    self:run_endpoint(ep)
  end, "pyroscope.write " .. name)
  return ep
end

-- Stops an endpoint (a stop, or a reload that removes it or changes its URL): what its queue
-- holds (the request being sent too) is dropped, counted and logged in one line.
function Instance:stop_endpoint(ep)
  push_endpoint.stop(ep)
  local requests, n = #ep.queue, 0
  for _, req in ipairs(ep.queue) do
    self:count_drop(ep, req, "stopped")
    n = n + req.profiles
  end
  ep.queue, ep.queued_bytes, ep.sending = {}, 0, nil
  if requests > 0 then
    self.ctx.log:warn("stopping with profiles not sent; they are dropped", { endpoint = ep.name, profiles = n,
      requests = requests })
  end
end

function Instance.count_drop(_, ep, req, reason)
  ep.m.dropped_bytes[reason]:add(req.bytes)
  ep.m.dropped_profiles[reason]:add(req.profiles)
  ep.dropped = ep.dropped + req.profiles
end

function Instance:drop(ep, req, why)
  self:count_drop(ep, req, "send_failed")
  self.ctx.log:warn("final error sending profiles to endpoint; they are dropped", { endpoint = ep.name, err = why,
    profiles = req.profiles })
end

-- Drops req for a queue bound (reason "queue_full" or "queue_bytes"): counted, logged, and the
-- component unhealthy for QUEUE_DROP_HEALTH seconds.
function Instance:drop_queued(ep, req, reason, why)
  self:count_drop(ep, req, reason)
  local now, d = scheduler.now(), ep.queue_drop
  if not d or now - d.last > M.QUEUE_DROP_HEALTH then
    d = { since = now, profiles = 0 }
    ep.queue_drop = d
  end
  d.last, d.profiles, d.why = now, d.profiles + req.profiles, why
  self.ctx.log:warn("queue full; profiles dropped", { endpoint = ep.name, reason = why, profiles = req.profiles })
end

--- The series labels of a profile: its own without the __ ones (but __name__ and __delta__), then
--- the external labels.
local function series_labels(labels, ext)
  local out = {}
  for k, v in pairs(labels) do
    if k:sub(1, 2) ~= "__" or k == "__name__" or k == "__delta__" then
      out[k] = v
    end
  end
  for k, v in pairs(ext) do
    out[k] = v
  end
  return out
end

function Instance:append(b)
  if profiles.len(b) == 0 then
    return
  end
  local list = {}
  for i, p in ipairs(b) do
    list[i] = { labels = series_labels(p.labels, self.args.external_labels), raw = p.raw, id = p.id }
  end
  local body, err = native.encode_push(list)
  if not body then
    error("encoding the push request: " .. err, 0)
  end
  local req = { body = body, size = #body, profiles = #b, bytes = profiles.bytes(b) }
  local max_size = self.args.queue.max_size
  for _, ep in pairs(self.endpoints) do
    -- the oldest requests waiting go first; never the one being sent (its retries keep it, and it
    -- may be on its way to the server right now)
    local sending = ep.queue[1] and ep.queue[1] == ep.sending
    local oldest, kept = sending and 2 or 1, sending and ep.queue[1].size or 0
    local why = "queue over its max_size (" .. max_size .. " bytes)"
    if #ep.queue > 0 and kept + req.size > max_size then
      -- it would not fit even beside the request being sent alone: not taken, nothing dropped for
      -- it (one larger than max_size is taken only into an empty queue)
      self:drop_queued(ep, req, "queue_bytes", why)
    else
      if #ep.queue >= M.MAX_QUEUE and ep.queue[oldest] then
        self:remove_queued(ep, oldest, "queue_full", "queue full (" .. M.MAX_QUEUE .. " requests waiting)")
      end
      while ep.queued_bytes + req.size > max_size and ep.queue[oldest] do
        self:remove_queued(ep, oldest, "queue_bytes", why)
      end
      ep.queue[#ep.queue + 1] = req
      ep.queued_bytes = ep.queued_bytes + req.size
      if ep.waiting then
        scheduler.wake(ep.waiting)
      end
    end
  end
end

function Instance:remove_queued(ep, i, reason, why)
  local req = table.remove(ep.queue, i)
  ep.queued_bytes = ep.queued_bytes - req.size
  self:drop_queued(ep, req, reason, why)
end

-- One POST of req: "sent"; "retry", err; "rejected", err.
function Instance:post(ep, req)
  local cfg = ep.cfg
  -- the protocol's headers win over custom ones, as connect-go sets them over the request's
  local headers = { ["Content-Type"] = "application/proto", ["Connect-Protocol-Version"] = "1",
    ["Connect-Timeout-Ms"] = tostring(math.floor(cfg.remote_timeout * 1000)) }
  local resp, rerr, seconds = push_endpoint.request(ep, cfg.url:gsub("/+$", "") .. PUSH_PATH, req.body, headers,
    RESERVED)
  self.m.latency:with(self.ctx.id, ep.m.label, "push"):observe(seconds)
  if not resp then
    return "retry", rerr
  end
  if resp.status >= 200 and resp.status < 300 then
    return "sent"
  end
  local code = status_code(resp.status)
  local ctype = resp.headers and resp.headers["content-type"] or ""
  if ctype:find("^application/json") then
    local ok, v = pcall(cjson.decode, resp.body or "")
    if ok and type(v) == "table" and type(v.code) == "string" then
      code = v.code
    end
  end
  local why = string.format("%s: server returned HTTP status %d: %s", code, resp.status, redact.excerpt(resp.body))
  return RETRY[code] and "retry" or "rejected", why
end

-- The endpoint's sender: sends the queued requests one after the other.
function Instance:run_endpoint(ep)
  while not ep.stopped do
    if #ep.queue == 0 then
      if not push_endpoint.wait(ep, 3600) then
        return
      end
    else
      self:send(ep)
    end
  end
end

function Instance:send(ep)
  local e, req = ep.cfg, ep.queue[1]
  local backoff = push_endpoint.new_backoff(e.min_backoff_period, e.max_backoff_period, e.max_backoff_retries)
  ep.sending = req
  while not ep.stopped do
    local outcome, why = self:post(ep, req)
    if ep.stopped then
      return
    end
    if outcome == "sent" then
      ep.m.sent_bytes:add(req.bytes)
      ep.m.sent_profiles:add(req.profiles)
      ep.sent = ep.sent + req.profiles
      ep.failures, ep.last_error = 0, nil
      break
    end
    ep.failures, ep.last_error = ep.failures + 1, why
    self.ctx.log:warn("failed to push to endpoint", { endpoint = ep.name, err = why })
    local wait = outcome ~= "rejected" and backoff:next()
    if not wait then
      self:drop(ep, req, why)
      break
    end
    ep.m.retries:add(1)
    if not pcall(scheduler.sleep, wait) or ep.stopped then
      return
    end
  end
  ep.sending = nil
  if ep.queue[1] == req then
    table.remove(ep.queue, 1)
    ep.queued_bytes = ep.queued_bytes - req.size
  end
end

-- Unhealthy while an endpoint fails FAILING_AFTER attempts in a row, or for QUEUE_DROP_HEALTH
-- seconds after its queue dropped requests.
function Instance:refresh_health()
  local problems = push_endpoint.failing(self, FAILING_AFTER)
  local names, now = {}, scheduler.now()
  for name, ep in pairs(self.endpoints) do
    local d = ep.queue_drop
    if d and now - d.last > M.QUEUE_DROP_HEALTH then
      ep.queue_drop = nil
    elseif d then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local ep = self.endpoints[name]
    local d = ep.queue_drop
    problems[#problems + 1] = string.format("endpoint %s (%s): %d profiles dropped from its queue since %s ago"
      .. " (the last %s ago): %s", name, redact.url(ep.cfg.url), d.profiles, duration.format(math.floor(now - d.since)),
      duration.format(math.floor(now - d.last)), d.why)
  end
  push_endpoint.report_health(self, problems)
end

function Instance:update(args)
  self:configure(args)
end

function Instance:stop()
  -- a graceful stop runs in a task: the endpoints that are not failing get STOP_DRAIN seconds to
  -- send what is queued
  if scheduler.current() then
    push_endpoint.drain(self, M.STOP_DRAIN, function(ep)
      return #ep.queue > 0 and ep.failures == 0
    end)
  end
  self.health_timer:close()
  for _, ep in pairs(self.endpoints) do
    self:stop_endpoint(ep)
  end
end

function Instance:debug_info()
  local eps = {}
  for name, ep in pairs(self.endpoints) do
    eps[#eps + 1] = { name = name, url = redact.url(ep.cfg.url), queued_requests = #ep.queue,
      queued_bytes = ep.queued_bytes,
      sent_profiles = ep.sent, dropped_profiles = ep.dropped, failed_attempts_in_a_row = ep.failures,
      last_error = ep.last_error or "" }
  end
  table.sort(eps, function(a, b)
    return a.name < b.name
  end)
  return { endpoints = eps }
end

return M
