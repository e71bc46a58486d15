--- loki.process's Go text/template (stage.template, stage.replace's replace): text with
-- {{ actions }}:
--   {{ pipeline }}                      its value printed (a missing one: "<no value>", as Go)
--   {{ if p }} {{ else if p }} {{ else }} {{ end }}, {{ with p }} ... {{ end }} (dot is p's value)
--   {{/* comment */}}, {{- and -}} trim the spaces beside an action
-- whose pipelines are made of
--   .Value .Entry .name  .            a value of the data, the dot
--   "text" `raw` 12 true false nil    literals
--   FUNC arg...  (pipeline)           a call; `x | FUNC arg` passes x as the last argument
-- with Alloy's functions (ToLower ToUpper Replace Trim TrimLeft TrimRight TrimPrefix TrimSuffix
-- TrimSpace Hash Sha2Hash regexReplaceAll regexReplaceAllLiteral), Go's builtins (eq ne lt le gt
-- ge and or not len print printf println) and the sprig functions log pipelines use (M.FUNCS).
-- Variables ($x), range, define/template/block and other functions are refused when the
-- pipeline is checked, naming the action.
local core = require("moonwatch.native.core")
local regex = require("moonwatch.native.regex")
local values = require("loki.process.values")

local M = {}

local NOVALUE = "<no value>"

local function go_unquote(s)
  return (s:gsub("\\(.)", { n = "\n", t = "\t", r = "\r", ['"'] = '"', ["\\"] = "\\" }))
end

-- The start of each character of s (a byte that is not a UTF-8 continuation byte, or the first).
local function char_starts(s)
  local starts = {}
  for k = 1, #s do
    local c = s:byte(k)
    if k == 1 or c < 0x80 or c > 0xBF then
      starts[#starts + 1] = k
    end
  end
  return starts
end

-- Go's strings.Trim*: the cutset is a set of characters, not bytes.
local function trim_set(s, cutset, left, right)
  if cutset == "" then
    return s
  end
  local set = {}
  local cs = char_starts(cutset)
  for k = 1, #cs do
    set[cutset:sub(cs[k], (cs[k + 1] or #cutset + 1) - 1)] = true
  end
  local chars = char_starts(s)
  local function char(k) -- the k-th character of s
    return s:sub(chars[k], (chars[k + 1] or #s + 1) - 1)
  end
  local a, b = 1, #chars
  if left then
    while a <= b and set[char(a)] do
      a = a + 1
    end
  end
  if right then
    while b >= a and set[char(b)] do
      b = b - 1
    end
  end
  if a > b then
    return ""
  end
  return s:sub(chars[a], (chars[b + 1] or #s + 1) - 1)
end

local function plain_replace(s, old, new, n)
  if n == 0 then
    return s
  end
  if old == "" then
    -- Go: before and after every UTF-8 character (here: byte runs of one character)
    local out, count = { new }, 1
    for ch in s:gmatch("[%z\1-\127\194-\244][\128-\191]*") do
      out[#out + 1] = ch
      if n < 0 or count < n then
        out[#out + 1] = new
        count = count + 1
      end
    end
    return table.concat(out)
  end
  local out, i, count = {}, 1, 0
  while n < 0 or count < n do
    local a, b = s:find(old, i, true)
    if not a then
      break
    end
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = new
    i = b + 1
    count = count + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

-- Case mapping as Go's strings.ToUpper/ToLower for ASCII, Latin-1, Latin Extended-A, Greek
-- and Cyrillic (the letters of most log text; other characters are kept as they are).
local UPPER, LOWER = {}, {}
local function pair(up, low)
  UPPER[low], LOWER[up] = up, low
end
for c = 0x41, 0x5A do
  pair(c, c + 0x20)
end
for c = 0xC0, 0xDE do
  if c ~= 0xD7 then
    pair(c, c + 0x20)
  end
end
for c = 0x100, 0x137, 2 do
  pair(c, c + 1)
end
for c = 0x139, 0x148, 2 do
  pair(c, c + 1)
end
for c = 0x14A, 0x177, 2 do
  pair(c, c + 1)
end
for c = 0x179, 0x17E, 2 do
  pair(c, c + 1)
end
pair(0x178, 0xFF)
UPPER[0x131], LOWER[0x130] = 0x49, 0x69 -- dotless i, dotted I
UPPER[0x17F], UPPER[0xB5] = 0x53, 0x39C -- long s, micro sign
for c = 0x391, 0x3A9 do
  if c ~= 0x3A2 then
    pair(c, c + 0x20)
  end
end
UPPER[0x3C2] = 0x3A3 -- final sigma
pair(0x386, 0x3AC)
pair(0x388, 0x3AD)
pair(0x389, 0x3AE)
pair(0x38A, 0x3AF)
pair(0x38C, 0x3CC)
pair(0x38E, 0x3CD)
pair(0x38F, 0x3CE)
for c = 0x410, 0x42F do
  pair(c, c + 0x20)
end
for c = 0x400, 0x40F do
  pair(c, c + 0x50)
end

local function utf8_char(cp)
  if cp < 0x80 then
    return string.char(cp)
  end
  return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) -- all mapped code points are below U+0800
end

local function map_case(s, map, ascii)
  s = ascii(s) -- ASCII letters (bytes from 0x80 on are left as they are)
  if not s:find("[\194-\213]") then
    return s
  end
  return (s:gsub("[\194-\213][\128-\191]", function(ch)
    local m = map[(ch:byte(1) - 0xC0) * 64 + ch:byte(2) - 0x80]
    return m and utf8_char(m) or ch
  end))
end

local function to_upper(s)
  return map_case(s, UPPER, string.upper)
end

local function to_lower(s)
  return map_case(s, LOWER, string.lower)
end

local function str(v, fname, k)
  if type(v) ~= "string" then
    error(string.format("%s: argument %d is not a string", fname, k), 0)
  end
  return v
end

-- Go's truth: false, 0, nil and "" are false (no other kind of value reaches a template); the
-- text "<no value>" is a string like any other.
local function truth(v)
  return not (v == nil or v == false or v == 0 or v == "")
end

-- Go's fmt %v of a value.
local function show(v)
  if v == nil then
    return NOVALUE
  elseif type(v) == "number" then
    if v == math.floor(v) and math.abs(v) < 2 ^ 63 then
      return string.format("%d", v)
    end
    return string.format("%.14g", v) -- Go prints the shortest form; the same for the literals of templates
  end
  return tostring(v)
end

-- strconv.Quote of s (UTF-8 kept; control characters escaped).
local function go_quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local esc = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ['"'] = '\\"', ["\\"] = "\\\\" }
    return esc[c] or string.format("\\x%02x", c:byte())
  end) .. '"'
end

-- Go's basic comparison (text/template's eq, lt...): values of one kind only.
local function kind(v, fname)
  local t = type(v)
  if t ~= "string" and t ~= "number" and t ~= "boolean" then
    error(string.format("%s: invalid type for comparison", fname), 0)
  end
  return t
end

local function compare(fname, a, b)
  if a == nil or b == nil then
    error(string.format("%s: incompatible types for comparison", fname), 0)
  end
  if kind(a, fname) ~= kind(b, fname) then
    error(string.format("%s: incompatible types for comparison", fname), 0)
  end
  if type(a) == "boolean" and fname ~= "eq" and fname ~= "ne" then
    error(string.format("%s: invalid type for comparison", fname), 0)
  end
  return a, b
end

-- As Go's eq: a missing value (nil) is equal to another one and to no value, without an error.
local function eq(a, ...)
  for k = 1, select("#", ...) do
    local b = select(k, ...)
    if a == nil or b == nil then
      if a == b then
        return true
      end
    elseif a == select(2, compare("eq", a, b)) then
      return true
    end
  end
  return false
end

-- Go's regexp Expand of template (ReplaceAllString's $1, ${1}, $name, ${name}, $$) for match ov of s.
local function expand(re, template, s, ov)
  local names = re:names()
  local out, i, n = {}, 1, #template
  while i <= n do
    local d = template:find("$", i, true)
    if not d then
      break
    end
    out[#out + 1] = template:sub(i, d - 1)
    i = d + 1
    if template:sub(i, i) == "$" then
      out[#out + 1] = "$"
      i = i + 1
    else
      local name, rest = template:match("^([%w_]+)()", i)
      if template:sub(i, i) == "{" then
        name, rest = template:match("^{([%w_]+)}()", i)
      end
      if not name then -- malformed: the $ is text
        out[#out + 1] = "$"
      else
        i = rest
        -- a number names a group, unless it has a leading zero or 9 digits or more (Go's rule)
        local g = name:find("^%d+$") and not (name:sub(1, 1) == "0" and #name > 1) and #name <= 8 and tonumber(name)
        if not g then
          for k = 1, re:groups() do
            if names[k] == name then
              g = k
              break
            end
          end
        end
        if g and g <= re:groups() and ov[2 * g] >= 0 then
          out[#out + 1] = s:sub(ov[2 * g] + 1, ov[2 * g + 1])
        end
      end
    end
  end
  out[#out + 1] = template:sub(i)
  return table.concat(out)
end

-- The compiled regexes of the regex functions (their first argument), a few dozen at most.
local regexes, nregexes = {}, 0
local function compiled(expr, fname)
  local re = regexes[expr]
  if re then
    return re
  end
  local err
  re, err = regex.new(expr)
  if not re then
    error(string.format("%s: invalid regex %q: %s", fname, expr, err), 0)
  end
  if nregexes >= 64 then
    regexes, nregexes = {}, 0
  end
  regexes[expr], nregexes = re, nregexes + 1
  return re
end

local function replace_all(fname, expr, s, repl, literal)
  local re = compiled(str(expr, fname, 1), fname)
  s, repl = str(s, fname, 2), str(repl, fname, 3)
  local out, prev = {}, 0
  for _, ov in ipairs(re:all(s)) do
    out[#out + 1] = s:sub(prev + 1, ov[0])
    out[#out + 1] = literal and repl or expand(re, repl, s, ov)
    prev = ov[1]
  end
  out[#out + 1] = s:sub(prev + 1)
  return table.concat(out)
end

local function int(v, fname, k)
  local n = tonumber(v)
  if not n then
    error(string.format("%s: argument %d is not a number", fname, k), 0)
  end
  return n >= 0 and math.floor(n) or math.ceil(n)
end

-- Go's fmt %v of an operand of a function: a missing value is <nil> (printed by an action, "<no value>").
local function go_v(v)
  if v == nil then
    return "<nil>"
  end
  return show(v)
end

-- Go's fmt name of the type of a bad verb's operand, and its value: "string=x", "<nil>".
local function go_type(v)
  if v == nil then
    return "<nil>"
  end
  local t = type(v) == "boolean" and "bool" or type(v)
  if t == "number" then
    t = (v == math.floor(v) and math.abs(v) < 2 ^ 63) and "int" or "float64"
  end
  return t .. "=" .. show(v)
end

-- Go's printf for the verbs of log text: %s %v %d %q %x %X %f %e %g %t %%, with flags,
-- width and precision; another verb is an error.
local function printf(format, ...)
  local args, k, nargs = { ... }, 0, select("#", ...)
  local out = str(format, "printf", 1):gsub("%%([%-+ #0]*%d*%.?%d*)(.)", function(flags, verb)
    if verb == "%" then
      return "%"
    end
    k = k + 1
    local v = args[k]
    if k > nargs then
      return "%!" .. verb .. "(MISSING)"
    end
    if verb == "v" then
      return string.format("%" .. flags .. "s", go_v(v))
    elseif (verb == "s" or verb == "q") and type(v) == "string" then
      return string.format("%" .. flags .. "s", verb == "q" and go_quote(v) or v)
    elseif verb == "t" and type(v) == "boolean" then
      return string.format("%" .. flags .. "s", tostring(v))
    elseif verb == "s" or verb == "q" or verb == "t" then
      return "%!" .. verb .. "(" .. go_type(v) .. ")" -- as Go's fmt for another kind (%q of a number is not done)
    elseif (verb == "x" or verb == "X") and type(v) == "string" then
      -- Go's %x of a string: its bytes (the first precision of them) in hex
      local prec = tonumber(flags:match("%.(%d*)$"))
      local hex = (prec and v:sub(1, prec) or v):gsub(".", function(c)
        return string.format(verb == "x" and "%02x" or "%02X", c:byte())
      end)
      if flags:find("#", 1, true) then
        hex = (verb == "x" and "0x" or "0X") .. hex
      end
      return string.format("%" .. (flags:find("-", 1, true) and "-" or "") .. (flags:match("^[^%d]*(%d*)") or "")
        .. "s", hex)
    elseif verb == "d" or verb == "x" or verb == "X" or verb == "f" or verb == "e" or verb == "g" then
      -- numbers only (a numeric string is a string to Go's fmt), integers for %d %x %X
      if type(v) ~= "number" or (v ~= math.floor(v) and verb ~= "f" and verb ~= "e" and verb ~= "g") then
        return "%!" .. verb .. "(" .. go_type(v) .. ")"
      end
      return string.format("%" .. flags .. verb, v)
    end
    error(string.format("printf: verb %%%s is not supported", verb), 0)
  end)
  return out
end

-- sprig's quote, squote and cat: the arguments that are not nil, each as fmt makes it of its
-- %v, joined by spaces.
local function joined(fmt, ...)
  local out = {}
  for k = 1, select("#", ...) do
    local v = select(k, ...)
    if v ~= nil then
      out[#out + 1] = fmt(show(v))
    end
  end
  return table.concat(out, " ")
end

-- Go's strings.TrimPrefix / TrimSuffix.
local function trim_prefix(s, p)
  return (p ~= "" and s:sub(1, #p) == p) and s:sub(#p + 1) or s
end
local function trim_suffix(s, p)
  return (p ~= "" and s:sub(-#p) == p) and s:sub(1, #s - #p) or s
end

-- Go's and (stop false) / or (stop true): the first operand whose truth is stop, else the last.
local function first_truth(stop)
  return function(...)
    local n = select("#", ...)
    for k = 1, n - 1 do
      local v = select(k, ...)
      if truth(v) == stop then
        return v
      end
    end
    return (select(n, ...))
  end
end

-- name -> { min arguments, max arguments (V: any number), fn }: Go's builtins, Alloy's functions
-- and the sprig functions log pipelines use.
local V = "variadic"
M.FUNCS = {
  -- Alloy's own (stages/template.go)
  ToLower = { 1, 1, function(s) return to_lower(str(s, "ToLower", 1)) end },
  ToUpper = { 1, 1, function(s) return to_upper(str(s, "ToUpper", 1)) end },
  Replace = { 4, 4, function(s, old, new, n)
    return plain_replace(str(s, "Replace", 1), str(old, "Replace", 2), str(new, "Replace", 3), tonumber(n) or -1)
  end },
  Trim = { 2, 2, function(s, c) return trim_set(str(s, "Trim", 1), str(c, "Trim", 2), true, true) end },
  TrimLeft = { 2, 2, function(s, c) return trim_set(str(s, "TrimLeft", 1), str(c, "TrimLeft", 2), true, false) end },
  TrimRight = { 2, 2, function(s, c)
    return trim_set(str(s, "TrimRight", 1), str(c, "TrimRight", 2), false, true)
  end },
  TrimPrefix = { 2, 2, function(s, p) return trim_prefix(str(s, "TrimPrefix", 1), str(p, "TrimPrefix", 2)) end },
  TrimSuffix = { 2, 2, function(s, p) return trim_suffix(str(s, "TrimSuffix", 1), str(p, "TrimSuffix", 2)) end },
  TrimSpace = { 1, 1, function(s) return values.trim_space(str(s, "TrimSpace", 1)) end },
  Hash = { 2, 2, function(salt, s)
    return core.sha3_256_hex(str(salt, "Hash", 1) .. str(s, "Hash", 2))
  end },
  Sha2Hash = { 2, 2, function(salt, s)
    return core.sha256_hex(str(salt, "Sha2Hash", 1) .. str(s, "Sha2Hash", 2))
  end },
  regexReplaceAll = { 3, 3, function(re, s, repl) return replace_all("regexReplaceAll", re, s, repl, false) end },
  regexReplaceAllLiteral = { 3, 3, function(re, s, repl)
    return replace_all("regexReplaceAllLiteral", re, s, repl, true)
  end },
  -- Go's text/template builtins
  eq = { 2, V, eq },
  ne = { 2, 2, function(a, b)
    if a ~= nil and b ~= nil then
      compare("ne", a, b)
    end
    return not eq(a, b)
  end },
  lt = { 2, 2, function(a, b)
    a, b = compare("lt", a, b)
    return a < b
  end },
  le = { 2, 2, function(a, b)
    a, b = compare("le", a, b)
    return a <= b
  end },
  gt = { 2, 2, function(a, b)
    a, b = compare("gt", a, b)
    return a > b
  end },
  ge = { 2, 2, function(a, b)
    a, b = compare("ge", a, b)
    return a >= b
  end },
  ["and"] = { 1, V, first_truth(false) },
  ["or"] = { 1, V, first_truth(true) },
  ["not"] = { 1, 1, function(v) return not truth(v) end },
  len = { 1, 1, function(s) return #str(s, "len", 1) end },
  print = { 0, V, function(...)
    -- Go's fmt.Sprint: a space between operands when neither is a string
    local out, n = {}, select("#", ...)
    for k = 1, n do
      local v = select(k, ...)
      if k > 1 and type(v) ~= "string" and type(select(k - 1, ...)) ~= "string" then
        out[#out + 1] = " "
      end
      out[#out + 1] = go_v(v)
    end
    return table.concat(out)
  end },
  println = { 0, V, function(...)
    local out = {}
    for k = 1, select("#", ...) do
      out[k] = go_v((select(k, ...)))
    end
    return table.concat(out, " ") .. "\n"
  end },
  printf = { 1, V, printf },
  -- sprig's
  lower = { 1, 1, function(s) return to_lower(str(s, "lower", 1)) end },
  upper = { 1, 1, function(s) return to_upper(str(s, "upper", 1)) end },
  trim = { 1, 1, function(s) return values.trim_space(str(s, "trim", 1)) end },
  trimAll = { 2, 2, function(c, s) return trim_set(str(s, "trimAll", 2), str(c, "trimAll", 1), true, true) end },
  trimPrefix = { 2, 2, function(p, s) return trim_prefix(str(s, "trimPrefix", 2), str(p, "trimPrefix", 1)) end },
  trimSuffix = { 2, 2, function(p, s) return trim_suffix(str(s, "trimSuffix", 2), str(p, "trimSuffix", 1)) end },
  default = { 2, 2, function(d, v)
    if not truth(v) then
      return d
    end
    return v
  end },
  empty = { 1, 1, function(v) return not truth(v) end },
  coalesce = { 1, V, function(...)
    for k = 1, select("#", ...) do
      local v = select(k, ...)
      if truth(v) then
        return v
      end
    end
    return nil
  end },
  ternary = { 3, 3, function(a, b, c) return truth(c) and a or b end },
  contains = { 2, 2, function(sub, s) return str(s, "contains", 2):find(str(sub, "contains", 1), 1, true) ~= nil end },
  hasPrefix = { 2, 2, function(p, s)
    s, p = str(s, "hasPrefix", 2), str(p, "hasPrefix", 1)
    return s:sub(1, #p) == p
  end },
  hasSuffix = { 2, 2, function(p, s)
    s, p = str(s, "hasSuffix", 2), str(p, "hasSuffix", 1)
    return p == "" or s:sub(-#p) == p
  end },
  replace = { 3, 3, function(old, new, s)
    return plain_replace(str(s, "replace", 3), str(old, "replace", 1), str(new, "replace", 2), -1)
  end },
  ["repeat"] = { 2, 2, function(n, s) return str(s, "repeat", 2):rep(math.max(0, int(n, "repeat", 1))) end },
  nospace = { 1, 1, function(s) return (str(s, "nospace", 1):gsub("%s", "")) end },
  trunc = { 2, 2, function(n, s)
    s, n = str(s, "trunc", 2), int(n, "trunc", 1)
    if n < 0 then
      return #s + n > 0 and s:sub(#s + n + 1) or s
    end
    return #s > n and s:sub(1, n) or s
  end },
  substr = { 3, 3, function(a, b, s)
    s, a, b = str(s, "substr", 3), int(a, "substr", 1), int(b, "substr", 2)
    if a < 0 then
      return s:sub(1, b)
    end
    if b < 0 or b > #s then
      return s:sub(a + 1)
    end
    return s:sub(a + 1, b)
  end },
  quote = { 0, V, function(...) return joined(go_quote, ...) end },
  squote = { 0, V, function(...) return joined(function(v) return "'" .. v .. "'" end, ...) end },
  cat = { 0, V, function(...) return joined(function(v) return v end, ...) end },
  title = { 1, 1, function(s)
    -- Go's strings.Title: a letter after a separator is upper-cased; separators are the ASCII
    -- characters other than letters, digits and "_", and the Unicode spaces
    local after_sep = true
    return (str(s, "title", 1):gsub("[%z\1-\127\192-\255][\128-\191]*", function(ch)
      local sep
      if #ch == 1 then
        sep = not ch:find("^[%w_]$")
      else
        sep = values.trim_space(ch) == ""
      end
      local out = after_sep and not sep and to_upper(ch) or ch
      after_sep = sep
      return out
    end))
  end },
  toString = { 1, 1, function(v) return go_v(v) end },
  regexMatch = { 2, 2, function(re, s)
    return compiled(str(re, "regexMatch", 1), "regexMatch"):find(str(s, "regexMatch", 2))
  end },
  regexFind = { 2, 2, function(re, s)
    s = str(s, "regexFind", 2)
    local ov = compiled(str(re, "regexFind", 1), "regexFind"):offsets(s)
    return ov and s:sub(ov[0] + 1, ov[1]) or ""
  end },
}

local function names()
  local t = {}
  for k in pairs(M.FUNCS) do
    t[#t + 1] = k
  end
  table.sort(t)
  return table.concat(t, ", ")
end

-- Lexes an action's text into tokens.
local function lex(src, where)
  local toks, i = {}, 1
  while i <= #src do
    local c = src:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == "|" then
      toks[#toks + 1] = { t = "pipe" }
      i = i + 1
    elseif c == "(" or c == ")" then
      toks[#toks + 1] = { t = c }
      i = i + 1
    elseif c == '"' then
      local j = i + 1
      while j <= #src and src:sub(j, j) ~= '"' do
        j = j + (src:sub(j, j) == "\\" and 2 or 1)
      end
      if j > #src then
        return nil, where .. ": unterminated string"
      end
      toks[#toks + 1] = { t = "lit", v = go_unquote(src:sub(i + 1, j - 1)) }
      i = j + 1
    elseif c == "`" then
      local j = src:find("`", i + 1, true)
      if not j then
        return nil, where .. ": unterminated raw string"
      end
      toks[#toks + 1] = { t = "lit", v = src:sub(i + 1, j - 1) }
      i = j + 1
    elseif c == "." then
      local name = src:match("^%.([%a_][%w_]*)", i)
      if name then
        if src:match("^%.[%a_]", i + 1 + #name) then
          return nil, where .. ": only .Field is supported (not .a.b)"
        end
        toks[#toks + 1] = { t = "field", v = name }
        i = i + 1 + #name
      else
        toks[#toks + 1] = { t = "dot" }
        i = i + 1
      end
    elseif c == "$" then
      return nil, where .. ": variables ($) are not supported"
    elseif c:match("[%d%-]") then
      local num = src:match("^%-?%d+%.?%d*", i)
      if not num then
        return nil, string.format("%s: unexpected %q", where, c)
      end
      toks[#toks + 1] = { t = "lit", v = tonumber(num) }
      i = i + #num
    elseif c:match("[%a_]") then
      local name = src:match("^[%a_][%w_]*", i)
      if name == "true" or name == "false" then
        toks[#toks + 1] = { t = "lit", v = name == "true" }
      elseif name == "nil" then
        toks[#toks + 1] = { t = "nil" }
      else
        toks[#toks + 1] = { t = "ident", v = name }
      end
      i = i + #name
    else
      return nil, string.format("%s: unexpected %q", where, c)
    end
  end
  return toks
end

-- Actions that open, continue or close a block.
local BLOCK = { ["if"] = true, with = true }
local UNSUPPORTED = { range = true, define = true, template = true, block = true, ["break"] = true,
  continue = true }

-- pipeline := command ('|' command)* ; command := operand+ ; returns an AST.
local function parse_pipeline(toks, pos, where)
  local cmds = {}
  local function operand()
    local tk = toks[pos]
    if not tk then
      return nil
    end
    if tk.t == "lit" or tk.t == "field" or tk.t == "dot" or tk.t == "nil" then
      pos = pos + 1
      return tk
    elseif tk.t == "(" then
      pos = pos + 1
      local sub, err
      sub, pos, err = parse_pipeline(toks, pos, where)
      if not sub then
        return nil, err
      end
      if not toks[pos] or toks[pos].t ~= ")" then
        return nil, where .. ": missing )"
      end
      pos = pos + 1
      return { t = "sub", v = sub }
    elseif tk.t == "ident" then
      if BLOCK[tk.v] or UNSUPPORTED[tk.v] or tk.v == "else" or tk.v == "end" then
        return nil, string.format("%s: unexpected %s", where, tk.v)
      end
      if not M.FUNCS[tk.v] then
        return nil, string.format("%s: function %q not defined (supported: %s)", where, tk.v, names())
      end
      pos = pos + 1
      return tk
    end
    return nil
  end
  while true do
    local cmd = {}
    while true do
      local op, err = operand()
      if err then
        return nil, pos, err
      end
      if not op then
        break
      end
      cmd[#cmd + 1] = op
    end
    if #cmd == 0 then
      return nil, pos, where .. ": missing value for command"
    end
    if cmd[1].t ~= "ident" and #cmd > 1 then
      return nil, pos, where .. ": a value cannot take arguments"
    end
    if cmd[1].t == "nil" and #cmds == 0 and not (toks[pos] and toks[pos].t == "pipe") and #cmd == 1 then
      return nil, pos, where .. ": nil is not a command"
    end
    cmds[#cmds + 1] = cmd
    if toks[pos] and toks[pos].t == "pipe" then
      pos = pos + 1
    else
      break
    end
  end
  -- arity check: first command gets its args; later ones one more (the piped value)
  for k, cmd in ipairs(cmds) do
    if cmd[1].t == "ident" then
      local f = M.FUNCS[cmd[1].v]
      local have = #cmd - 1 + (k > 1 and 1 or 0)
      if have < f[1] or (f[2] ~= V and have > f[2]) then
        local want = f[2] == V and ("at least " .. f[1]) or f[1] == f[2] and tostring(f[1])
          or (f[1] .. " to " .. f[2])
        return nil, pos, string.format("%s: wrong number of args for %s: want %s got %d", where, cmd[1].v, want, have)
      end
    elseif k > 1 then
      return nil, pos, where .. ": only a function can follow |"
    end
  end
  return cmds, pos
end

-- The actions of src in order: { text } and { action = tokens, where } items, with the
-- trim markers applied.
local function scan(src)
  local items, i = {}, 1
  while i <= #src do
    local a = src:find("{{", i, true)
    if not a then
      items[#items + 1] = { text = src:sub(i) }
      break
    end
    local text = src:sub(i, a - 1)
    local b = src:find("}}", a + 2, true)
    if not b then
      return nil, string.format("unclosed action at offset %d", a - 1)
    end
    local inner = src:sub(a + 2, b - 1)
    if inner:sub(1, 2) == "- " or inner == "-" then
      text = text:gsub("%s+$", "")
      inner = inner:sub(2)
    end
    local trim_right = inner:sub(-2) == " -"
    if trim_right then
      inner = inner:sub(1, -2)
    end
    items[#items + 1] = { text = text }
    local where = string.format("{{%s}}", inner)
    if not inner:match("^%s*/%*") then -- not a comment
      local toks, err = lex(inner, where)
      if not toks then
        return nil, err
      end
      if #toks == 0 then
        return nil, where .. ": missing value for command"
      end
      items[#items + 1] = { action = toks, where = where }
    end
    i = b + 2
    if trim_right then
      i = src:find("[^%s]", i) or #src + 1
    end
  end
  return items
end

-- Parses items[k..] into a list of nodes until an {{else}}, {{else if/with ...}} or {{end}}
-- (returned with the position after it), or the end of items (closer nil).
local function parse_list(items, k)
  local nodes = {}
  while k <= #items do
    local it = items[k]
    if it.text then
      if it.text ~= "" then
        nodes[#nodes + 1] = it.text
      end
      k = k + 1
    else
      local toks, where = it.action, it.where
      local head = toks[1].t == "ident" and toks[1].v
      if head == "end" or head == "else" then
        return nodes, k, it
      elseif UNSUPPORTED[head] then
        return nil, nil, nil, string.format("%s: {{ %s }} is not supported (if, else, with and end are)", where, head)
      elseif BLOCK[head] then
        local node, err = { t = head, branches = {} }
        local cond_toks, cur = { unpack(toks, 2) }, it
        k = k + 1
        while true do
          if #cond_toks == 0 then
            return nil, nil, nil, string.format("%s: missing value for %s", cur.where, head)
          end
          local cmds, pos, perr = parse_pipeline(cond_toks, 1, cur.where)
          if not cmds then
            return nil, nil, nil, perr
          end
          if cond_toks[pos] then
            return nil, nil, nil, cur.where .. ": unexpected " .. tostring(cond_toks[pos].v or cond_toks[pos].t)
          end
          local body, closer
          body, k, closer, err = parse_list(items, k)
          if not body then
            return nil, nil, nil, err
          end
          node.branches[#node.branches + 1] = { cond = cmds, body = body }
          if not closer then
            return nil, nil, nil, string.format("%s: unexpected EOF (no {{end}})", it.where)
          end
          k = k + 1
          local ct = closer.action
          if ct[1].v == "end" then
            if #ct > 1 then
              return nil, nil, nil, closer.where .. ": unexpected " .. tostring(ct[2].v or ct[2].t)
            end
            break
          end
          -- else
          if ct[2] and ct[2].t == "ident" and ct[2].v == head then -- else if / else with
            cond_toks, cur = { unpack(ct, 3) }, closer
          elseif ct[2] then
            return nil, nil, nil, closer.where .. ": unexpected " .. tostring(ct[2].v or ct[2].t)
          else
            local els, closer2
            els, k, closer2, err = parse_list(items, k)
            if not els then
              return nil, nil, nil, err
            end
            if not closer2 or closer2.action[1].v ~= "end" or #closer2.action > 1 then
              return nil, nil, nil, string.format("%s: expected {{end}}", (closer2 or it).where)
            end
            k = k + 1
            node.otherwise = els
            break
          end
        end
        nodes[#nodes + 1] = node
      else
        local cmds, pos, perr = parse_pipeline(toks, 1, where)
        if not cmds then
          return nil, nil, nil, perr
        end
        if toks[pos] then
          return nil, nil, nil, where .. ": unexpected " .. tostring(toks[pos].v or toks[pos].t)
        end
        nodes[#nodes + 1] = { t = "out", p = cmds }
        k = k + 1
      end
    end
  end
  return nodes, k, nil
end

--- Compiles a template; nil, err (naming the action) when it is malformed or uses what is
--- not supported.
---@param src string
---@return table|nil compiled, string|nil err
function M.compile(src)
  local items, err = scan(src)
  if not items then
    return nil, err
  end
  local nodes, _, closer, perr = parse_list(items, 1)
  if not nodes then
    return nil, perr
  end
  if closer then
    return nil, closer.where .. ": unexpected " .. closer.action[1].v
  end
  return { nodes = nodes }
end

local run_pipeline

-- Go's map printing of the data ({{ . }} at the top): map[k:v ...], keys sorted.
local function show_map(data)
  local keys = {}
  for k in pairs(data) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  for k = 1, #keys do
    keys[k] = keys[k] .. ":" .. show(data[keys[k]])
  end
  return "map[" .. table.concat(keys, " ") .. "]"
end

local function value_of(op, data, dot)
  if op.t == "lit" then
    return op.v
  elseif op.t == "field" then
    if type(dot) ~= "table" then
      error(string.format("can't evaluate field %s in type %s", op.v, type(dot)), 0)
    end
    return dot[op.v]
  elseif op.t == "dot" then
    return dot
  elseif op.t == "sub" then
    return run_pipeline(op.v, data, dot)
  end
  return nil -- nil
end

run_pipeline = function(cmds, data, dot)
  local piped
  for k, cmd in ipairs(cmds) do
    if cmd[1].t == "ident" then
      local args = {}
      for j = 2, #cmd do
        args[j - 1] = value_of(cmd[j], data, dot)
      end
      local n = #cmd - 1
      if k > 1 then
        n = n + 1
        args[n] = piped
      end
      piped = M.FUNCS[cmd[1].v][3](unpack(args, 1, n))
    else
      piped = value_of(cmd[1], data, dot)
    end
  end
  return piped
end

local function run(nodes, data, dot, out)
  for _, n in ipairs(nodes) do
    if type(n) == "string" then
      out[#out + 1] = n
    elseif n.t == "out" then
      local v = run_pipeline(n.p, data, dot)
      out[#out + 1] = type(v) == "table" and show_map(v) or show(v)
    else -- if / with: the first branch whose value is true, else the {{else}}
      local taken = false
      for _, b in ipairs(n.branches) do
        local v = run_pipeline(b.cond, data, dot)
        if truth(v) then
          run(b.body, data, n.t == "with" and v or dot, out)
          taken = true
          break
        end
      end
      if not taken and n.otherwise then
        run(n.otherwise, data, dot, out)
      end
    end
  end
end

--- Executes a compiled template with data ({ name = string }); the text, or nil, err.
function M.execute(c, data)
  local out = {}
  local ok, err = pcall(run, c.nodes, data, data, out)
  if not ok then
    return nil, err
  end
  return table.concat(out)
end

return M
