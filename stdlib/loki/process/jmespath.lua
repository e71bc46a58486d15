--- loki.process's JMESPath subset (stage.json expressions): what people write in practice,
-- compiled once into a list of steps:
--   name          an identifier: letters, digits and _, not starting with a digit
--   "a name"      a quoted identifier (JSON string escapes), for names with - . or spaces
--   a.b.c         nested fields
--   a[0], a[-1]   array indexes (negative from the end)
-- Anything else of JMESPath (wildcards, slices, filters, functions, pipes, multiselect,
-- literals) is refused with the offset where it starts, when the pipeline is checked.
local values = require("loki.process.values")

local M = {}

local function unquote(expr, i)
  -- expr:sub(i, i) == '"'; returns the string and the index after the closing quote
  local out, j = {}, i + 1
  while j <= #expr do
    local c = expr:sub(j, j)
    if c == '"' then
      return table.concat(out), j + 1
    elseif c == "\\" then
      local n = expr:sub(j + 1, j + 1)
      local map = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
      if map[n] then
        out[#out + 1] = map[n]
        j = j + 2
      elseif n == "u" and values.u_escape(expr, j) then
        out[#out + 1], j = values.u_escape(expr, j)
      else
        return nil, string.format("bad escape in quoted identifier at offset %d", j - 1)
      end
    else
      out[#out + 1] = c
      j = j + 1
    end
  end
  return nil, string.format("unterminated quoted identifier at offset %d", i - 1)
end

local UNSUPPORTED = "only field names, \"quoted names\", a.b and [N] are supported"

--- Compiles expr into steps ({ string key } or { number index, 0-based, negative from the end }).
---@param expr string
---@return table|nil steps, string|nil err
function M.compile(expr)
  local steps, i, n = {}, 1, #expr
  local function field()
    local s, e = expr:find("^[%a_][%w_]*", i)
    if s then
      steps[#steps + 1] = expr:sub(s, e)
      i = e + 1
      return true
    elseif expr:sub(i, i) == '"' then
      local v, nexti = unquote(expr, i)
      if not v then
        return nil, nexti
      end
      steps[#steps + 1] = v
      i = nexti
      return true
    end
    return nil, string.format("unsupported JMESPath at offset %d (%q): %s", i - 1, expr:sub(i, i + 9), UNSUPPORTED)
  end
  local function skip_space()
    i = expr:find("[^ \t\n\r]", i) or n + 1
  end
  skip_space()
  if i > n then
    return nil, "empty JMESPath expression"
  end
  if expr:sub(i, i) ~= "[" then
    local ok, err = field()
    if not ok then
      return nil, err
    end
  end
  while true do
    skip_space()
    if i > n then
      break
    end
    local c = expr:sub(i, i)
    if c == "." then
      i = i + 1
      skip_space()
      local ok, err = field()
      if not ok then
        return nil, err
      end
    elseif c == "[" then
      local s, e, num = expr:find("^%[%s*(%-?%d+)%s*%]", i)
      if not s then
        return nil, string.format("unsupported JMESPath at offset %d (%q): %s", i - 1, expr:sub(i, i + 9),
          UNSUPPORTED)
      end
      steps[#steps + 1] = { index = tonumber(num) }
      i = e + 1
    else
      return nil, string.format("unsupported JMESPath at offset %d (%q): %s", i - 1, expr:sub(i, i + 9), UNSUPPORTED)
    end
  end
  return steps
end

--- Applies compiled steps to a decoded JSON value; nil when a step finds nothing.
---@param steps table
---@param v any
function M.search(steps, v)
  for k = 1, #steps do
    if type(v) ~= "table" then
      return nil
    end
    local s = steps[k]
    if type(s) == "string" then
      v = v[s]
    else
      local idx = s.index
      if idx < 0 then
        idx = #v + idx
      end
      v = v[idx + 1]
    end
    if v == nil then
      return nil
    end
  end
  return v
end

return M
