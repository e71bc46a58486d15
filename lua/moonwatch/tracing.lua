--- moonwatch.tracing: traces of moonwatch itself (the `tracing` block, as Alloy's).
-- Spans are made in Lua, a handful per scrape, push request or load, and only for sampled
-- traces: span counts are small next to samples, so a span is a Lua table until it is
-- finished; finished spans are queued and sent as span batches (moonwatch.batch.traces, C)
-- to the block's write_to consumers (otelcol.exporter.*.input) every FLUSH_EVERY seconds, or
-- at once when BATCH spans are queued (OpenTelemetry's batch span processor; at most QUEUE
-- queued, more are dropped and counted).
--
-- Sampling is decided once per trace, at its root, by OpenTelemetry's TraceIdRatioBased on
-- the trace id (C: mw_ffi_trace_sampled); children follow their root. When tracing is off
-- (sampling_fraction 0 or no write_to) or the trace is not sampled, start returns NOOP, one
-- shared span whose methods do nothing: no table, string or id is made per scrape.
--
--   local tracing = require("moonwatch.tracing")
--   local span = tracing.start("prometheus.scrape", nil, tracing.CLIENT)
--   span:set("url", url)
--   if span.sampled and tracing.send_traceparent() then headers.traceparent = span:traceparent() end
--   span:finish(err) -- err: nil for success, else the status message (status Error)
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local ffi_rt = require("moonwatch.ffi")
local redact = require("moonwatch.redact")

local M = {}

--- OTLP SpanKind values.
M.INTERNAL, M.SERVER, M.CLIENT, M.PRODUCER, M.CONSUMER = 1, 2, 3, 4, 5
M.FLUSH_EVERY = 1
M.BATCH = 512
M.QUEUE = 2048
--- The instrumentation scope of moonwatch's spans.
M.SCOPE = "moonwatch"

local state = {
  on = false, fraction = 0.1, consumers = nil, send_traceparent = false,
  queue = {}, n = 0, timer = nil, batch = nil, resource = nil, dropped = nil, sent = nil,
}

--- The span of traces that are not sampled (or made while tracing is off): its methods do nothing.
local NOOP = { sampled = false }
function NOOP.set() end
function NOOP.finish() end
function NOOP.traceparent() end
M.NOOP = NOOP

local Span = {}
Span.__index = Span

local idbuf = ffi.new("uint8_t[16]")

local function random(n)
  C.mw_ffi_trace_random(idbuf, n)
  return ffi.string(idbuf, n)
end

-- lowercase hex of an id (8 or 16 bytes): one format call, no closure or string per byte
local function hex(s)
  return string.format(string.rep("%02x", #s), s:byte(1, -1))
end
M.hex = hex

--- moonwatch's resource attributes: service.name, service.version, service.instance.id.
function M.resource()
  if not state.resource then
    local id = hex(random(16))
    -- a UUID v4 (RFC 4122): version and variant bits set
    id = id:sub(1, 12) .. "4" .. id:sub(14, 16) .. string.format("%x", 8 + tonumber(id:sub(17, 17), 16) % 4)
      .. id:sub(18)
    state.resource = {
      { "service.name", "moonwatch" },
      { "service.version", (ffi_rt.version()) },
      { "service.instance.id", string.format("%s-%s-%s-%s-%s", id:sub(1, 8), id:sub(9, 12), id:sub(13, 16),
        id:sub(17, 20), id:sub(21, 32)) },
    }
  end
  return state.resource
end

--- Starts a span named name, child of parent (a span, or nil for the root of a new trace).
--- opts (optional): start_ns (int64 cdata or number; default now), kind (default INTERNAL).
--- Returns NOOP when tracing is off, the parent is NOOP, or a new trace is not sampled.
---@return table span
function M.start(name, parent, kind, start_ns)
  if not state.on or parent == NOOP then
    return NOOP
  end
  local tid
  if parent then
    tid = parent.trace_id
  else
    C.mw_ffi_trace_random(idbuf, 16)
    if C.mw_ffi_trace_sampled(idbuf, state.fraction) == 0 then
      return NOOP
    end
    tid = ffi.string(idbuf, 16)
  end
  return setmetatable({
    sampled = true, trace_id = tid, span_id = random(8), parent_span_id = parent and parent.span_id,
    name = name, kind = kind or M.INTERNAL, start_ns = start_ns or C.mw_ffi_trace_now_ns(), attributes = {},
  }, Span)
end

--- Sets attribute key (string, number or boolean; nil is ignored). Spans leave the process:
--- a string has its secrets masked (URL passwords, Authorization values, known secrets).
function Span:set(key, value)
  if type(value) == "string" then
    value = redact.text(value)
  end
  if value ~= nil then
    local a = self.attributes
    a[#a + 1] = key
    a[#a + 1] = value
  end
end

--- The W3C traceparent of this span ("00-<trace id>-<span id>-01": sampled).
function Span:traceparent()
  return "00-" .. hex(self.trace_id) .. "-" .. hex(self.span_id) .. "-01"
end

local flush

--- Ends the span (at end_ns, default now): status Error with message err (secrets masked) when
--- err is given, else Unset; queues it for write_to.
function Span:finish(err, end_ns)
  if self.end_ns then
    return
  end
  self.end_ns = end_ns or C.mw_ffi_trace_now_ns()
  if err then
    self.status_code, self.status_message = 2, redact.text(tostring(err))
  end
  if not state.on then
    return
  end
  if state.n >= M.QUEUE then
    state.dropped = state.dropped or require("moonwatch.metrics").default:counter(
      "moonwatch_tracing_dropped_spans_total",
      "Spans of moonwatch's own traces dropped because the tracing queue was full.", {}):with()
    state.dropped:inc()
    return
  end
  state.n = state.n + 1
  state.queue[state.n] = self
  if state.n >= M.BATCH then
    flush()
  elseif not state.timer then
    state.timer = require("moonwatch.core").timer(M.FLUSH_EVERY, 0, flush, "tracing write_to")
  end
end

-- Sends the queued spans to the write_to consumers, as one batch.
flush = function()
  if state.timer then
    state.timer:close()
    state.timer = nil
  end
  local q, n = state.queue, state.n
  state.queue, state.n = {}, 0
  local consumers = state.consumers
  if n == 0 or not consumers then
    return
  end
  local traces = require("moonwatch.batch.traces")
  state.batch = state.batch or traces.new()
  local b = state.batch
  traces.reset(b)
  for _, kv in ipairs(M.resource()) do
    traces.resource(b, kv[1], kv[2])
  end
  for i = 1, n do
    local ok, err = traces.add(b, q[i])
    if not ok then
      require("moonwatch.log").warn("tracing: span dropped", { span = q[i].name, err = err })
    end
  end
  for i = 1, #consumers do
    local r = consumers[i]
    local ok, err = xpcall(r.append, debug.traceback, r, b)
    if not ok then
      require("moonwatch.log").error("tracing write_to: consumer failed", { receiver = tostring(r.id), err = err })
    end
  end
end

--- Sends the finished spans queued now (at shutdown, before the components stop).
function M.flush()
  flush()
end

--- Configures tracing from the `tracing` block's arguments: { sampling_fraction, write_to,
--- send_traceparent }. Tracing is on when the fraction is above 0 and write_to is not empty.
function M.configure(args)
  args = args or {}
  state.fraction = args.sampling_fraction or 0.1
  state.consumers = args.write_to and #args.write_to > 0 and args.write_to or nil
  state.send_traceparent = args.send_traceparent == true
  state.on = state.fraction > 0 and state.consumers ~= nil
  if not state.on then
    state.queue, state.n = {}, 0
  end
end

--- Whether spans are made at all (for callers that would do extra work for them).
function M.enabled()
  return state.on
end

--- Whether scrapes send the traceparent header of their sampled spans (send_traceparent).
function M.send_traceparent()
  return state.send_traceparent
end

return M
