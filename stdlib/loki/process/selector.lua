--- loki.process's LogQL selectors (stage.match): a stream selector and line filters,
--   {name="v", name!="v", name=~"re", name!~"re"} |= "text" != "text" |~ "re" !~ "re"
-- Strings are double-quoted (Go escapes) or `raw`. Label regexes are fully anchored (as
-- Prometheus matchers), line filter regexes are searched anywhere in the line, both with
-- Go's RE2 syntax. A matcher on a missing label sees the empty value. Label filters
-- (| label == ...) and parsers (| json) are refused, as in Alloy's match stage.
local regex = require("moonwatch.native.regex")

local M = {}

local function str_at(s, i)
  local q = s:sub(i, i)
  if q == "`" then
    local j = s:find("`", i + 1, true)
    if not j then
      return nil, string.format("unterminated string at offset %d", i - 1)
    end
    return s:sub(i + 1, j - 1), j + 1
  elseif q == '"' then
    local out, j = {}, i + 1
    local ESC = { n = "\n", t = "\t", r = "\r", ['"'] = '"', ["\\"] = "\\", ["'"] = "'" }
    while j <= #s do
      local c = s:sub(j, j)
      if c == '"' then
        return table.concat(out), j + 1
      elseif c == "\\" then
        local e = s:sub(j + 1, j + 1)
        if not ESC[e] then
          return nil, string.format("unknown escape \\%s at offset %d", e, j - 1)
        end
        out[#out + 1] = ESC[e]
        j = j + 2
      else
        out[#out + 1] = c
        j = j + 1
      end
    end
    return nil, string.format("unterminated string at offset %d", i - 1)
  end
  return nil, string.format("expected a quoted string at offset %d", i - 1)
end

--- Compiles a selector; nil, err (with the offset) when it is not valid.
---@param s string
---@return table|nil selector, string|nil err
function M.compile(s)
  local i = s:find("%S") or #s + 1
  if s:sub(i, i) ~= "{" then
    return nil, "a selector starts with { (a stream selector such as {job=\"app\"})"
  end
  i = i + 1
  local matchers, filters = {}, {}
  while true do
    i = s:find("%S", i) or #s + 1
    if s:sub(i, i) == "}" then
      i = i + 1
      break
    end
    local name = s:match("^[%a_][%w_]*", i)
    if not name then
      return nil, string.format("expected a label name at offset %d", i - 1)
    end
    i = s:find("%S", i + #name) or #s + 1
    local op = s:match("^[=!]~", i) or s:match("^!=", i) or s:match("^=", i)
    if not op then
      return nil, string.format("expected =, !=, =~ or !~ at offset %d", i - 1)
    end
    i = s:find("%S", i + #op) or #s + 1
    local v, nexti = str_at(s, i)
    if not v then
      return nil, nexti
    end
    i = nexti
    local m = { name = name, op = op, value = v }
    if op == "=~" or op == "!~" then
      local re, err = regex.new(v, true)
      if not re then
        return nil, string.format("label %s: invalid regex %q: %s", name, v, err)
      end
      m.re = re
    end
    matchers[#matchers + 1] = m
    i = s:find("%S", i) or #s + 1
    local c = s:sub(i, i)
    if c == "," then
      i = i + 1
    elseif c ~= "}" then
      return nil, string.format("expected , or } at offset %d", i - 1)
    end
  end
  if #matchers == 0 then
    return nil, "a stream selector needs at least one matcher"
  end
  while true do
    i = s:find("%S", i)
    if not i then
      break
    end
    local op = s:match("^|=", i) or s:match("^!=", i) or s:match("^|~", i) or s:match("^!~", i)
    if not op then
      return nil, string.format("unsupported at offset %d (%q): only line filters |= != |~ !~ may follow the "
        .. "stream selector", i - 1, s:sub(i, i + 9))
    end
    i = s:find("%S", i + 2) or #s + 1
    local v, nexti = str_at(s, i)
    if not v then
      return nil, nexti
    end
    i = nexti
    local f = { op = op, value = v }
    if op == "|~" or op == "!~" then
      local re, err = regex.new(v, false)
      if not re then
        return nil, string.format("line filter: invalid regex %q: %s", v, err)
      end
      f.re = re
    end
    filters[#filters + 1] = f
  end
  return { matchers = matchers, filters = filters, has_filters = #filters > 0 }
end

--- True when labels ({ name = value }) and line match the selector.
function M.matches(sel, labels, line)
  local ms = sel.matchers
  for k = 1, #ms do
    local m = ms[k]
    local v = labels[m.name] or ""
    local op = m.op
    if op == "=" then
      if v ~= m.value then
        return false
      end
    elseif op == "!=" then
      if v == m.value then
        return false
      end
    elseif op == "=~" then
      if not m.re:find(v) then
        return false
      end
    elseif m.re:find(v) then
      return false
    end
  end
  local fs = sel.filters
  for k = 1, #fs do
    local f = fs[k]
    local op = f.op
    if op == "|=" then
      if not line:find(f.value, 1, true) then
        return false
      end
    elseif op == "!=" then
      if line:find(f.value, 1, true) then
        return false
      end
    elseif op == "|~" then
      if not f.re:find(line) then
        return false
      end
    elseif f.re:find(line) then
      return false
    end
  end
  return true
end

return M
