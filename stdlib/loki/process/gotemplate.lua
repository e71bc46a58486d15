--- loki.process's Go text/template subset (stage.template): text with {{ actions }} whose
-- pipelines are made of
--   .Value .Entry .name   a value of the data (a missing one prints "<no value>", as Go)
--   "text" `raw` 12       literals
--   FUNC arg...           a function call; `x | FUNC arg` passes x as the last argument
-- with the functions ToLower ToUpper Replace Trim TrimLeft TrimRight TrimPrefix TrimSuffix
-- TrimSpace Hash Sha2Hash regexReplaceAll regexReplaceAllLiteral (Alloy's) and lower upper
-- trim default (sprig's). {{- and -}} trim spaces.
-- Control actions (if, range, with, define...) and other functions are refused with what
-- is supported, when the pipeline is checked.
local core = require("moonwatch.native.core")
local regex = require("moonwatch.native.regex")

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

-- The compiled regexes of regexReplaceAll* (their first argument), a few dozen at most.
local regexes, nregexes = {}, 0
local function compiled(re)
  local r = regexes[re]
  if r then
    return r
  end
  local err
  r, err = regex.new(re)
  if not r then
    error(string.format("invalid regex %q: %s", re, err), 0)
  end
  if nregexes >= 64 then
    regexes, nregexes = {}, 0
  end
  regexes[re], nregexes = r, nregexes + 1
  return r
end

-- Go's Regexp.Expand: repl with $1, ${1}, $name, ${name} replaced by the groups of match ov
-- in s ($$ is $; a malformed $ is itself).
local function expand(re, repl, s, ov)
  local names = re:names()
  local out, i, n = {}, 1, #repl
  while i <= n do
    local d = repl:find("$", i, true)
    if not d then
      out[#out + 1] = repl:sub(i)
      break
    end
    out[#out + 1] = repl:sub(i, d - 1)
    local name, rest
    if repl:sub(d + 1, d + 1) == "$" then
      out[#out + 1] = "$"
      i = d + 2
    else
      if repl:sub(d + 1, d + 1) == "{" then
        name, rest = repl:match("^([%w_]+)}()", d + 2)
      else
        name, rest = repl:match("^([%w_]+)()", d + 1)
      end
      if not name then
        out[#out + 1] = "$"
        i = d + 1
      else
        i = rest
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
  return table.concat(out)
end

-- Go's Regexp.ReplaceAllString (literal: ReplaceAllLiteralString).
local function replace_all(pattern, s, repl, literal)
  local re = compiled(pattern)
  local out, pos, last, n = {}, 0, 0, #s
  while pos <= n do
    local ov = re:offsets(s, pos + 1)
    if not ov then
      break
    end
    out[#out + 1] = s:sub(last + 1, ov[0])
    if ov[1] > last or ov[0] == 0 then -- not an empty match right after the last one
      out[#out + 1] = literal and repl or expand(re, repl, s, ov)
    end
    last = ov[1]
    local c = s:byte(pos + 1)
    local width = (not c or c < 0xC0) and 1 or c < 0xE0 and 2 or c < 0xF0 and 3 or 4
    if pos + width > ov[1] then
      pos = pos + width
    elseif pos + 1 > ov[1] then
      pos = pos + 1
    else
      pos = ov[1]
    end
  end
  out[#out + 1] = s:sub(last + 1)
  return table.concat(out)
end

-- name -> { arity, fn }
M.FUNCS = {
  Hash = { 2, function(salt, input)
    return core.sha3_256_hex(str(salt, "Hash", 1) .. str(input, "Hash", 2))
  end },
  Sha2Hash = { 2, function(salt, input)
    return core.sha256_hex(str(salt, "Sha2Hash", 1) .. str(input, "Sha2Hash", 2))
  end },
  regexReplaceAll = { 3, function(re, s, repl)
    return replace_all(str(re, "regexReplaceAll", 1), str(s, "regexReplaceAll", 2), str(repl, "regexReplaceAll", 3))
  end },
  regexReplaceAllLiteral = { 3, function(re, s, repl)
    return replace_all(str(re, "regexReplaceAllLiteral", 1), str(s, "regexReplaceAllLiteral", 2),
      str(repl, "regexReplaceAllLiteral", 3), true)
  end },
  ToLower = { 1, function(s) return to_lower(str(s, "ToLower", 1)) end },
  ToUpper = { 1, function(s) return to_upper(str(s, "ToUpper", 1)) end },
  lower = { 1, function(s) return to_lower(str(s, "lower", 1)) end },
  upper = { 1, function(s) return to_upper(str(s, "upper", 1)) end },
  Replace = { 4, function(s, old, new, n)
    return plain_replace(str(s, "Replace", 1), str(old, "Replace", 2), str(new, "Replace", 3), tonumber(n) or -1)
  end },
  Trim = { 2, function(s, c) return trim_set(str(s, "Trim", 1), str(c, "Trim", 2), true, true) end },
  TrimLeft = { 2, function(s, c) return trim_set(str(s, "TrimLeft", 1), str(c, "TrimLeft", 2), true, false) end },
  TrimRight = { 2, function(s, c) return trim_set(str(s, "TrimRight", 1), str(c, "TrimRight", 2), false, true) end },
  TrimPrefix = { 2, function(s, p)
    s, p = str(s, "TrimPrefix", 1), str(p, "TrimPrefix", 2)
    return (p ~= "" and s:sub(1, #p) == p) and s:sub(#p + 1) or s
  end },
  TrimSuffix = { 2, function(s, p)
    s, p = str(s, "TrimSuffix", 1), str(p, "TrimSuffix", 2)
    return (p ~= "" and s:sub(-#p) == p) and s:sub(1, #s - #p) or s
  end },
  TrimSpace = { 1, function(s) return (str(s, "TrimSpace", 1):gsub("^%s+", ""):gsub("%s+$", "")) end },
  trim = { 1, function(s) return (str(s, "trim", 1):gsub("^%s+", ""):gsub("%s+$", "")) end },
  default = { 2, function(d, v)
    if v == nil or v == "" or v == NOVALUE then
      return d
    end
    return v
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
        toks[#toks + 1] = { t = "field", v = name }
        i = i + 1 + #name
      else
        return nil, where .. ": only .Field is supported (not . alone or .a.b)"
      end
    elseif c:match("[%d%-]") then
      local num = src:match("^%-?%d+%.?%d*", i)
      if not num then
        return nil, string.format("%s: unexpected %q", where, c)
      end
      toks[#toks + 1] = { t = "lit", v = tonumber(num) }
      i = i + #num
    elseif c:match("[%a_]") then
      local name = src:match("^[%a_][%w_]*", i)
      toks[#toks + 1] = { t = "ident", v = name }
      i = i + #name
    else
      return nil, string.format("%s: unexpected %q", where, c)
    end
  end
  return toks
end

local CONTROL = { ["if"] = true, ["else"] = true, ["end"] = true, range = true, with = true, define = true,
  template = true, block = true, ["break"] = true, continue = true }

-- pipeline := command ('|' command)* ; command := operand+ ; returns an AST.
local function parse_pipeline(toks, pos, where)
  local cmds = {}
  local function operand()
    local tk = toks[pos]
    if not tk then
      return nil
    end
    if tk.t == "lit" or tk.t == "field" then
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
      if CONTROL[tk.v] then
        return nil, string.format("%s: {{ %s }} is not supported (only values and functions: %s)", where, tk.v,
          names())
      end
      if not M.FUNCS[tk.v] then
        return nil, string.format("%s: function %q is not supported (supported: %s)", where, tk.v, names())
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
      return nil, pos, where .. ": empty command"
    end
    if cmd[1].t ~= "ident" and #cmd > 1 then
      return nil, pos, where .. ": a value cannot take arguments"
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
      local want = M.FUNCS[cmd[1].v][1]
      local have = #cmd - 1 + (k > 1 and 1 or 0)
      if have ~= want then
        return nil, pos, string.format("%s: %s takes %d arguments, got %d", where, cmd[1].v, want, have)
      end
    elseif k > 1 then
      return nil, pos, where .. ": only a function can follow |"
    end
  end
  return cmds, pos
end

--- Compiles a template; nil, err (naming the action) when it uses what is not supported.
---@param src string
---@return table|nil compiled, string|nil err
function M.compile(src)
  local parts, i = {}, 1
  while i <= #src do
    local a = src:find("{{", i, true)
    if not a then
      parts[#parts + 1] = src:sub(i)
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
    parts[#parts + 1] = text
    local where = string.format("{{%s}}", inner)
    if inner:match("^%s*/%*") then -- a comment
      parts[#parts + 1] = ""
    else
      local toks, err = lex(inner, where)
      if not toks then
        return nil, err
      end
      local cmds, pos, perr = parse_pipeline(toks, 1, where)
      if not cmds then
        return nil, perr
      end
      if toks[pos] then
        return nil, where .. ": unexpected " .. (toks[pos].v or toks[pos].t)
      end
      parts[#parts + 1] = cmds
    end
    i = b + 2
    if trim_right then
      i = src:find("[^%s]", i) or #src + 1
    end
  end
  return { parts = parts }
end

local run_pipeline

local function value_of(op, data)
  if op.t == "lit" then
    return op.v
  elseif op.t == "field" then
    return data[op.v]
  elseif op.t == "sub" then
    return run_pipeline(op.v, data)
  end
end

run_pipeline = function(cmds, data)
  local piped
  for k, cmd in ipairs(cmds) do
    if cmd[1].t == "ident" then
      local args = {}
      for j = 2, #cmd do
        args[#args + 1] = value_of(cmd[j], data)
      end
      if k > 1 then
        args[#args + 1] = piped
      end
      local f = M.FUNCS[cmd[1].v][2]
      piped = f(unpack(args, 1, M.FUNCS[cmd[1].v][1]))
    else
      piped = value_of(cmd[1], data)
    end
  end
  return piped
end

--- Executes a compiled template with data ({ name = string }); the text, or nil, err.
function M.execute(c, data)
  local out = {}
  for k, p in ipairs(c.parts) do
    if type(p) == "string" then
      out[k] = p
    else
      local ok, v = pcall(run_pipeline, p, data)
      if not ok then
        return nil, v
      end
      if v == nil then
        v = NOVALUE
      end
      out[k] = type(v) == "number" and tostring(v) or v
    end
  end
  return table.concat(out)
end

return M
