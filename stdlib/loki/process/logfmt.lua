--- loki.process's logfmt decoder (stage.logfmt): key=value pairs as go-logfmt reads them.
-- A key is a run of bytes above space other than = and "; a value is a bare run of bytes
-- above space, or a double-quoted string with Go escapes (\" \\ \n \t \r \uXXXX); a key
-- without = has the empty value. Garbage between pairs is skipped.
local values = require("loki.process.values")

local M = {}

local ESC = { n = "\n", t = "\t", r = "\r", ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f" }

local function quoted(s, i)
  -- s:sub(i, i) == '"'
  local j = i + 1
  local fast = s:find('["\\]', j)
  if fast and s:sub(fast, fast) == '"' then
    return s:sub(j, fast - 1), fast + 1
  end
  local out = {}
  while j <= #s do
    local c = s:sub(j, j)
    if c == '"' then
      return table.concat(out), j + 1
    elseif c == "\\" then
      local e = s:sub(j + 1, j + 1)
      if ESC[e] then
        out[#out + 1] = ESC[e]
        j = j + 2
      elseif e == "u" and values.u_escape(s, j) then
        out[#out + 1], j = values.u_escape(s, j)
      else
        out[#out + 1] = c
        j = j + 1
      end
    else
      out[#out + 1] = c
      j = j + 1
    end
  end
  return table.concat(out), j -- unterminated: the rest
end

--- Calls fn(key, value) for each pair of s, in order.
---@param s string
---@param fn fun(key: string, value: string)
function M.each(s, fn)
  local i, n = 1, #s
  while i <= n do
    local ks, ke = s:find('^[^%s="]+', i)
    if not ks then
      i = i + 1 -- a space, a stray = or "
    else
      local key = s:sub(ks, ke)
      i = ke + 1
      if s:sub(i, i) == "=" then
        i = i + 1
        if s:sub(i, i) == '"' then
          local v
          v, i = quoted(s, i)
          fn(key, v)
        else
          local vs, ve = s:find("^[^%s]*", i)
          fn(key, s:sub(vs, ve))
          i = ve + 1
        end
      else
        fn(key, "")
      end
    end
  end
end

return M
