--- moonwatch.log: leveled, structured log lines on stderr (logfmt or JSON).
-- Every line carries ts, level, the component id where there is one, and msg.
-- With the logging block's write_to, every line emitted also goes, as written, to those log
-- receivers as a log entry of stream {component="moonwatch"} (Alloy's {component="alloy"}):
-- queued (at most M.FORWARD_MAX lines; past that, lines are dropped and counted in
-- moonwatch_logging_write_to_dropped_lines_total) and delivered in one batch every
-- M.FORWARD_EVERY seconds from the event loop. A line emitted while a batch is delivered (a
-- receiver's own error, a receiver that raises) goes to stderr only: it never feeds itself.
-- Lines emitted before the logging block is first applied (the first load) are kept in the
-- queue as Alloy buffers them, and sent once write_to is known (dropped when it is empty).
-- The message and every value pass through moonwatch.redact.text on their way out: no URL
-- password, credential or configured secret is written, whatever a caller hands over (an
-- error a server answered with, a URL, a traceback).
local ffi_rt = require("moonwatch.ffi")
local redact = require("moonwatch.redact")

local M = {}

local LEVELS = { debug = 1, info = 2, warn = 3, error = 4 }
M.LEVELS = LEVELS

local state = { level = LEVELS.info, format = "logfmt", out = io.stderr, sinks = {} }

--- Lines queued for write_to at most (past that they are dropped and counted), and the
--- seconds between two deliveries.
M.FORWARD_MAX = 1000
M.FORWARD_EVERY = 0.1

-- write_to: receivers, the queue of { ts, line }, and whether a batch is being delivered
local fwd = { receivers = nil, configured = false, queue = {}, n = 0, delivering = false, timer = nil,
  dropped = nil, batch = nil }

--- Configures logging (the `logging` block).
---@param opts table { level = "info", format = "logfmt"|"json", out = file? }
function M.configure(opts)
  if opts.level then
    assert(LEVELS[opts.level], "unknown log level")
    state.level = LEVELS[opts.level]
  end
  if opts.format then
    assert(opts.format == "logfmt" or opts.format == "json", "unknown log format")
    state.format = opts.format
  end
  if opts.out then
    state.out = opts.out
  end
  if opts.write_to ~= nil then
    M.write_to(opts.write_to)
  end
end

local emit

-- Delivers the queued lines to the write_to receivers, as one batch (on the event loop).
local function deliver()
  if fwd.timer then
    fwd.timer:close()
    fwd.timer = nil
  end
  local q, n = fwd.queue, fwd.n
  fwd.queue, fwd.n = {}, 0
  local receivers = fwd.receivers
  if n == 0 or not receivers then
    return
  end
  local logs = require("moonwatch.batch.logs")
  fwd.batch = fwd.batch or logs.new()
  local b = fwd.batch
  logs.reset(b)
  local s = logs.stream(b, { component = "moonwatch" })
  for i = 1, n do
    local e = q[i]
    local sec = math.floor(e[1])
    logs.add(b, s, sec, math.min(math.floor((e[1] - sec) * 1e9), 999999999), e[2])
  end
  fwd.delivering = true
  for i = 1, #receivers do
    local r = receivers[i]
    local ok, err = xpcall(r.append, debug.traceback, r, b)
    if not ok then -- logged while delivering: to stderr only
      emit("error", nil, "logging write_to: receiver failed", { receiver = tostring(r.id), err = err })
    end
  end
  fwd.delivering = false
end

-- Queues a line for write_to (never one emitted while delivering).
local function forward(ts, line)
  if fwd.delivering then
    return
  end
  if fwd.n >= M.FORWARD_MAX then
    if not fwd.dropped then
      fwd.dropped = require("moonwatch.metrics").default:counter("moonwatch_logging_write_to_dropped_lines_total",
        "Own log lines not sent to the logging block's write_to because its queue was full.", {}):with()
    end
    fwd.dropped:inc()
    return
  end
  fwd.n = fwd.n + 1
  fwd.queue[fwd.n] = { ts, line }
  if fwd.receivers and not fwd.timer then
    fwd.timer = require("moonwatch.core").timer(M.FORWARD_EVERY, 0, deliver, "logging write_to")
  end
end

--- Delivers the lines queued for write_to now, then stops sending to it (at shutdown,
--- before the components stop: what they log while stopping goes to stderr only).
function M.flush()
  deliver()
  M.write_to(nil)
end

--- Sends every line emitted from now on to these log receivers too (the logging block's
--- write_to); an empty list or nil stops it.
---@param receivers table[]|nil
function M.write_to(receivers)
  fwd.receivers = receivers and #receivers > 0 and receivers or nil
  fwd.configured = true
  if not fwd.receivers then
    fwd.queue, fwd.n = {}, 0
  elseif fwd.n > 0 and not fwd.timer then
    fwd.timer = require("moonwatch.core").timer(0, 0, deliver, "logging write_to")
  end
end

--- The current format: "logfmt" or "json".
function M.format()
  return state.format
end

--- Adds a function receiving every emitted entry (level, ts, fields); returns a remover.
function M.add_sink(fn)
  state.sinks[fn] = true
  return function()
    state.sinks[fn] = nil
  end
end

local iso8601 = require("moonwatch.duration").iso8601

local function logfmt_value(v)
  v = tostring(v)
  if v ~= "" and not v:find('[%s"=\\]') and not v:find("[%c]") then
    return v
  end
  return '"' .. v:gsub('[\\"]', "\\%0"):gsub("\n", "\\n"):gsub("\t", "\\t"):gsub("\r", "\\r") .. '"'
end

local function json_string(v)
  return '"' .. tostring(v):gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" }
    return map[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- A value as it may be written: numbers and booleans as they are, anything else as redacted text.
local function clean(v)
  local t = type(v)
  if t == "number" or t == "boolean" then
    return v
  end
  return redact.text(tostring(v))
end

function emit(level, ctx, msg, kv)
  if LEVELS[level] < state.level then
    return
  end
  local ts = ffi_rt.time_now()
  local keys = { "ts", "level" }
  local vals = { iso8601(ts), level }
  if ctx and ctx.component_id then
    keys[#keys + 1], vals[#vals + 1] = "component_id", ctx.component_id
  end
  keys[#keys + 1], vals[#vals + 1] = "msg", clean(msg)
  if kv then
    local names = {}
    for k in pairs(kv) do
      names[#names + 1] = k
    end
    table.sort(names)
    for _, k in ipairs(names) do
      keys[#keys + 1], vals[#vals + 1] = k, clean(kv[k])
    end
  end
  local parts = {}
  local line
  if state.format == "json" then
    for i, k in ipairs(keys) do
      parts[i] = json_string(k) .. ":" .. json_string(vals[i])
    end
    line = "{" .. table.concat(parts, ",") .. "}"
  else
    for i, k in ipairs(keys) do
      parts[i] = k .. "=" .. logfmt_value(vals[i])
    end
    line = table.concat(parts, " ")
  end
  state.out:write(line, "\n")
  state.out:flush()
  if fwd.receivers or not fwd.configured then
    forward(ts, line)
  end
  if next(state.sinks) then
    local entry = {}
    for i, k in ipairs(keys) do
      entry[k] = vals[i]
    end
    for fn in pairs(state.sinks) do
      pcall(fn, level, ts, entry)
    end
  end
end

local Logger = {}
Logger.__index = Logger

for name in pairs(LEVELS) do
  Logger[name] = function(self, msg, kv)
    emit(name, self.ctx, msg, kv)
  end
  M[name] = function(msg, kv)
    emit(name, nil, msg, kv)
  end
end

--- A logger whose lines carry ctx (e.g. { component_id = "prometheus.scrape.x" }).
---@param ctx table
function M.new(ctx)
  return setmetatable({ ctx = ctx }, Logger)
end

--- True when lines at `level` are emitted.
function M.enabled(level)
  return LEVELS[level] >= state.level
end

return M
