--- moonwatch.duration: durations as Prometheus and Alloy write them (and timestamps as
--- their debug pages and logs do).
-- Accepts Go's time.ParseDuration syntax ("1m30s", "1.5h", "500ms", "300us") and
-- Prometheus's day/week/year units ("2d", "1w", "1y"); values are seconds.
local M = {}

local UNITS = {
  ns = 1e-9, us = 1e-6, ["µs"] = 1e-6, ms = 1e-3, s = 1, m = 60, h = 3600,
  d = 86400, w = 7 * 86400, y = 365 * 86400,
}

--- Parses a duration string.
---@param s string
---@return number|nil seconds
---@return string|nil err
function M.parse(s)
  if type(s) == "number" then
    return nil, "expected a duration string such as \"15s\", got a number (write \"" .. s .. "s\")"
  end
  if type(s) ~= "string" then
    return nil, "expected a duration string such as \"15s\", got " .. type(s)
  end
  if s == "0" then
    return 0
  end
  local rest, total, sign = s, 0, 1
  if rest:sub(1, 1) == "-" then
    sign, rest = -1, rest:sub(2)
  elseif rest:sub(1, 1) == "+" then
    rest = rest:sub(2)
  end
  if rest == "" then
    return nil, string.format("invalid duration %q", s)
  end
  while rest ~= "" do
    local num, unit, tail = rest:match("^(%d*%.?%d*)([a-zµ]+)(.*)$")
    if not num or num == "" or num == "." then
      return nil, string.format("invalid duration %q", s)
    end
    local mult = UNITS[unit]
    if not mult then
      return nil, string.format("invalid duration %q: unknown unit %q (use ms, s, m, h, d, w, y)", s, unit)
    end
    total = total + tonumber(num) * mult
    rest = tail
  end
  return sign * total
end

--- Formats seconds the way Prometheus prints durations ("1m30s", "500ms", "0s").
---@param secs number
---@return string
function M.format(secs)
  if secs == 0 then
    return "0s"
  end
  local out, neg = {}, secs < 0
  local ms = math.floor(math.abs(secs) * 1000 + 0.5)
  local parts = { { "y", 365 * 86400000 }, { "w", 7 * 86400000 }, { "d", 86400000 },
    { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 } }
  for _, p in ipairs(parts) do
    local n = math.floor(ms / p[2])
    if n > 0 then
      out[#out + 1] = n .. p[1]
      ms = ms - n * p[2]
    end
  end
  return (neg and "-" or "") .. table.concat(out)
end

--- Formats a Unix time in seconds as RFC 3339 UTC with milliseconds
--- ("2026-12-07T17:15:21.042Z"); nil for nil.
---@param t number|nil
---@return string|nil
function M.iso8601(t)
  if not t then
    return nil
  end
  local secs = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. string.format(".%03dZ", math.floor((t - secs) * 1000))
end

return M
