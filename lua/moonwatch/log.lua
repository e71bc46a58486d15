--- moonwatch.log: leveled, structured log lines on stderr (logfmt or JSON).
-- Every line carries ts, level, the component id where there is one, and msg.
-- The message and every value pass through moonwatch.redact.text on their way out: no URL
-- password, credential or configured secret is written, whatever a caller hands over (an
-- error a server answered with, a URL, a traceback).
local ffi_rt = require("moonwatch.ffi")
local redact = require("moonwatch.redact")

local M = {}

local LEVELS = { debug = 1, info = 2, warn = 3, error = 4 }
M.LEVELS = LEVELS

local state = { level = LEVELS.info, format = "logfmt", out = io.stderr, sinks = {} }

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

local function iso8601(t)
  local secs = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. string.format(".%03dZ", math.floor((t - secs) * 1000))
end

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

local function emit(level, ctx, msg, kv)
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
  if state.format == "json" then
    for i, k in ipairs(keys) do
      parts[i] = json_string(k) .. ":" .. json_string(vals[i])
    end
    state.out:write("{", table.concat(parts, ","), "}\n")
  else
    for i, k in ipairs(keys) do
      parts[i] = k .. "=" .. logfmt_value(vals[i])
    end
    state.out:write(table.concat(parts, " "), "\n")
  end
  state.out:flush()
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
