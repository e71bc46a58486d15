--- loki.process's values: the extracted map holds strings, numbers, booleans (JSON's
-- scalars) and JSON text (objects and arrays); M.str turns any of them into a string
-- as Alloy's stages do (numbers as Go's strconv.FormatFloat(v, 'f', -1, 64)).
local M = {}

--- A number as Go's FormatFloat(v, 'f', -1, 64): the shortest digits that read back as v, no exponent.
---@param v number
---@return string
function M.float(v)
  if v ~= v then
    return "NaN"
  elseif v == math.huge then
    return "+Inf"
  elseif v == -math.huge then
    return "-Inf"
  elseif v == math.floor(v) and math.abs(v) < 2 ^ 53 then
    return string.format("%.0f", v)
  end
  for p = 1, 17 do
    local s = string.format("%." .. p .. "g", v)
    if tonumber(s) == v then
      local mant, exp = s:match("^(-?[%d.]+)e([-+]%d+)$")
      if not mant then
        return s
      end
      -- d.ddd e N written out: the shortest digits, then zeros (never the binary's exact digits)
      local neg = mant:sub(1, 1) == "-"
      local digits = mant:gsub("[-.]", "")
      local point = 1 + tonumber(exp)
      local out
      if point >= #digits then
        out = digits .. string.rep("0", point - #digits)
      elseif point > 0 then
        out = digits:sub(1, point) .. "." .. digits:sub(point + 1)
      else
        out = "0." .. string.rep("0", -point) .. digits
      end
      return (neg and "-" or "") .. out
    end
  end
  return string.format("%.17g", v)
end

-- A number as Go's encoding/json writes it: as M.float, but with an exponent below 1e-6 and
-- from 1e21 on (1e-7, 1.5e+21).
local function json_float(v)
  local a = math.abs(v)
  if a == 0 or (a >= 1e-6 and a < 1e21) or v ~= v or a == math.huge then
    return M.float(v)
  end
  for p = 1, 17 do
    local s = string.format("%." .. p .. "e", v)
    if tonumber(s) == v then
      local mant, sign, exp = s:match("^(-?[%d.]+)e([-+])0*(%d+)$")
      mant = mant:find("%.") and mant:gsub("0+$", ""):gsub("%.$", "") or mant
      if #exp < 2 and sign == "+" then
        exp = "0" .. exp
      end
      return mant .. "e" .. sign .. exp
    end
  end
  return M.float(v)
end

local function quote(s)
  return M.go_json_string(s)
end

local null
--- A decoded JSON value as JSON text (object keys sorted, as Go's encoding/json).
function M.json(v)
  null = null or require("cjson").null
  local t = type(v)
  if t == "string" then
    return quote(v)
  elseif t == "number" then
    return json_float(v)
  elseif t == "boolean" then
    return tostring(v)
  elseif t ~= "table" or v == null then
    return "null"
  end
  local n = #v
  local amt = require("cjson").array_mt
  if n > 0 or (amt and getmetatable(v) == amt) then
    local parts = {}
    for i = 1, n do
      parts[i] = M.json(v[i])
    end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do
    keys[#keys + 1] = tostring(k)
  end
  table.sort(keys)
  for i, k in ipairs(keys) do
    keys[i] = quote(k) .. ":" .. M.json(v[k])
  end
  return "{" .. table.concat(keys, ",") .. "}"
end

--- An extracted value as a string (nil stays nil).
function M.str(v)
  local t = type(v)
  if t == "string" then
    return v
  elseif t == "number" then
    return M.float(v)
  elseif t == "boolean" then
    return v and "true" or "false"
  elseif t == "nil" then
    return nil
  end
  return M.json(v)
end

--- True when s is valid UTF-8.
function M.is_utf8(s)
  if not s:find("[\128-\255]") then
    return true
  end
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len
    if c < 0x80 then
      len = 1
    elseif c >= 0xC2 and c <= 0xDF then
      len = 2
    elseif c >= 0xE0 and c <= 0xEF then
      len = 3
    elseif c >= 0xF0 and c <= 0xF4 then
      len = 4
    else
      return false
    end
    for k = i + 1, i + len - 1 do
      local b = s:byte(k)
      if not b or b < 0x80 or b > 0xBF then
        return false
      end
    end
    if len == 3 then
      local b = s:byte(i + 1)
      if (c == 0xE0 and b < 0xA0) or (c == 0xED and b > 0x9F) then
        return false
      end
    elseif len == 4 then
      local b = s:byte(i + 1)
      if (c == 0xF0 and b < 0x90) or (c == 0xF4 and b > 0x8F) then
        return false
      end
    end
    i = i + len
  end
  return true
end

-- Go's unicode.IsSpace, as UTF-8: the ASCII ones, U+0085, U+00A0 and the Zs/Zl/Zp spaces.
local SPACES = { ["\194\133"] = true, ["\194\160"] = true, ["\225\154\128"] = true, ["\226\128\168"] = true,
  ["\226\128\169"] = true, ["\226\128\175"] = true, ["\226\129\159"] = true, ["\227\128\128"] = true }
for cp = 0x2000, 0x200A do
  SPACES[string.char(0xE2, 0x80, 0x80 + cp - 0x2000)] = true
end
local ASCII_SPACE = { [9] = true, [10] = true, [11] = true, [12] = true, [13] = true, [32] = true }

-- The length of the space ending s at byte j (0: none).
local function space_before(s, j)
  local c = s:byte(j)
  if ASCII_SPACE[c] then
    return 1
  elseif c and c >= 0x80 then
    for w = 2, 3 do
      if SPACES[s:sub(j - w + 1, j)] then
        return w
      end
    end
  end
  return 0
end

--- Go's strings.TrimSpace: s without its leading and trailing Unicode spaces (in linear
--- time: "%s+$" backtracks over every run of spaces within s).
function M.trim_space(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    if ASCII_SPACE[c] then
      i = i + 1
    elseif c >= 0xC2 and (SPACES[s:sub(i, i + 1)] or SPACES[s:sub(i, i + 2)]) then
      i = i + (SPACES[s:sub(i, i + 1)] and 2 or 3)
    else
      break
    end
  end
  local j = n
  while j >= i do
    local w = space_before(s, j)
    if w == 0 or j - w + 1 < i then
      break
    end
    j = j - w
  end
  return s:sub(i, j)
end

--- A label name as Prometheus allows it.
function M.is_label_name(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

--- The UTF-8 bytes of code point cp (up to U+10FFFF).
---@param cp integer
---@return string
function M.utf8_char(cp)
  if cp < 0x80 then
    return string.char(cp)
  elseif cp < 0x800 then
    return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
  elseif cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
    0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

-- The escapes of go_json_string for the ASCII bytes that have a short one.
local JSON_SHORT = { [8] = "\\u0008", [9] = "\\t", [10] = "\\n", [12] = "\\u000c", [13] = "\\r", [34] = '\\"',
  [92] = "\\\\", [60] = "\\u003c", [62] = "\\u003e", [38] = "\\u0026" }

--- s as a JSON string the way Go's json.Marshal writes it: HTML characters (< > &) and
--- U+2028, U+2029 escaped, control characters as \n \r \t or \u00XX, and each byte that is
--- not part of valid UTF-8 as \ufffd.
---@param s string
---@return string
function M.go_json_string(s)
  local out, i, n = { '"' }, 1, #s
  while i <= n do
    -- the bytes written as they are go out in one piece, up to the next one that may not be
    local j = s:find('[%z\1-\31"\\<>&\128-\255]', i)
    if not j then
      out[#out + 1] = s:sub(i)
      break
    elseif j > i then
      out[#out + 1] = s:sub(i, j - 1)
      i = j
    end
    local c = s:byte(i)
    if c < 0x80 then
      local e = JSON_SHORT[c]
      if e then
        out[#out + 1] = e
      elseif c < 0x20 then
        out[#out + 1] = string.format("\\u%04x", c)
      else
        out[#out + 1] = string.char(c)
      end
      i = i + 1
    else
      local len = c >= 0xF0 and 4 or c >= 0xE0 and 3 or c >= 0xC2 and 2 or 0
      local ch = len > 0 and s:sub(i, i + len - 1) or ""
      if len == 0 or #ch < len or not M.is_utf8(ch) then
        out[#out + 1] = "\\ufffd"
        i = i + 1
      else
        if ch == "\226\128\168" then
          ch = "\\u2028"
        elseif ch == "\226\128\169" then
          ch = "\\u2029"
        end
        out[#out + 1] = ch
        i = i + len
      end
    end
  end
  out[#out + 1] = '"'
  return table.concat(out)
end

--- The text of the \uXXXX escape at s[i] (its backslash) as Go's JSON and logfmt decoders read
--- it: a high surrogate and the low one escaped after it are one character, a lone surrogate
--- is U+FFFD. Returns the UTF-8 bytes and the index after the escape(s), or nil when s has no
--- \uXXXX at i.
---@param s string
---@param i integer
---@return string|nil, integer|nil
function M.u_escape(s, i)
  local hex = s:match("^\\u(%x%x%x%x)", i)
  if not hex then
    return nil
  end
  local cp = tonumber(hex, 16)
  if cp >= 0xD800 and cp < 0xDC00 then
    local lo = s:match("^\\u([dD][c-fC-F]%x%x)", i + 6)
    if lo then
      return M.utf8_char(0x10000 + (cp - 0xD800) * 1024 + (tonumber(lo, 16) - 0xDC00)), i + 12
    end
    cp = 0xFFFD
  elseif cp >= 0xDC00 and cp < 0xE000 then
    cp = 0xFFFD
  end
  return M.utf8_char(cp), i + 6
end

return M
