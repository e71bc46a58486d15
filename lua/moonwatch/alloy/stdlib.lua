--- moonwatch.alloy.stdlib: the functions of Alloy's standard library that configurations
-- use, with Alloy's names (both the old flat ones and the namespaced ones of newer
-- Alloy versions: to_lower and string.to_lower, concat and array.concat, env and sys.env,
-- json_decode and encoding.from_json). Lua pipelines reach them as `alloy.NAME(...)`
-- (what `moonwatch convert` writes). Lists are Lua arrays; Alloy's null is nil, but inside a
-- list or an object that encoding.from_json decoded it is schema.NULL (cjson.null: a Lua
-- table cannot hold nil), as Alloy keeps it there; reading it (field, index) gives nil.
local cjson = require("cjson")
local schema = require("moonwatch.schema")

local M = {}

local NULL = schema.NULL

--- The name of v's type in Alloy's words (bool, list, object, null...).
local function typename(v)
  local t = type(v)
  if t == "boolean" then
    return "bool"
  elseif t == "nil" or v == NULL then
    return "null"
  elseif schema.is_secret(v) then
    return "secret"
  elseif t == "table" then
    return (next(v) == nil or v[1] ~= nil) and "list" or "object"
  end
  return t
end
M.typename = typename

local function reveal(v)
  if schema.is_secret(v) then
    return v:reveal(), true
  end
  return v, false
end

local number_string -- below

-- A string argument: a number is converted as Alloy's decoder converts it; a secret is
-- refused as Alloy refuses it (its value would come out of the function as a plain string).
local function want_string(fname, i, v)
  if type(v) == "number" then
    return number_string(v)
  elseif schema.is_secret(v) then
    error(string.format("%s: argument %d is a secret, which may not be converted into a string (use "
      .. "convert.nonsensitive)", fname, i), 0)
  elseif type(v) ~= "string" then
    error(string.format("%s: argument %d must be a string, got %s", fname, i, typename(v)), 0)
  end
  return v
end

local function want_list(fname, i, v)
  if type(v) ~= "table" or getmetatable(v) then
    error(string.format("%s: argument %d must be a list, got %s", fname, i, typename(v)), 0)
  end
  return v
end

local function plain_find(s, sep, init)
  return s:find(sep, init, true)
end

local F = {}

function F.concat(...)
  local out = {}
  for i = 1, select("#", ...) do
    local l = want_list("concat", i, (select(i, ...)))
    for _, x in ipairs(l) do
      out[#out + 1] = x
    end
  end
  return out
end

-- The zero values Alloy's coalesce skips: null, false, 0, "", empty lists and objects.
local function is_zero(v)
  return v == nil or v == NULL or v == false or v == 0 or v == ""
    or (type(v) == "table" and not getmetatable(v) and next(v) == nil)
end

function F.coalesce(...)
  local n = select("#", ...)
  for i = 1, n do
    local v = select(i, ...)
    if not is_zero(v) then
      return v
    end
  end
  if n > 0 then
    return (select(n, ...))
  end
  return nil
end

function F.env(name)
  return os.getenv(want_string("sys.env", 1, name)) or ""
end

-- JSON as Go's encoding/json reads it: no NaN, Infinity or hexadecimal numbers.
local json = cjson.new()
json.decode_invalid_numbers(false)

-- Alloy's encoding.from_json: a null field or list item stays, as NULL (a top-level null is
-- nil); a list is told from an object by its keys, as typename does ({} and [] are alike).
function F.json_decode(s)
  local ok, v = pcall(json.decode, want_string("json_decode", 1, s))
  if not ok then
    error("json_decode: " .. tostring(v), 0)
  end
  local function check(x)
    if x == math.huge or x == -math.huge then
      error("json_decode: a number is out of range of a float64", 0)
    elseif type(x) == "table" then
      for _, y in pairs(x) do
        check(y)
      end
    end
  end
  check(v)
  if v == NULL then
    return nil
  end
  return v
end

function F.json_path()
  error("json_path: not supported by moonwatch", 0)
end

-- One UTF-8 character (or a stray byte), as Go's strings functions step through a string.
local UTF8_CHAR = "[%z\1-\127\194-\244][\128-\191]*"

-- A number as Go's %v prints Alloy's (fixed = false: strconv's 'g', -1: exponent form below
-- 1e-4 and from 1e6) or as Alloy converts it to a string (fixed: 'f', -1): an integer in
-- full, a float in its shortest round-tripping digits.
local function go_number(v, fixed)
  if v ~= v then
    return "NaN"
  elseif v == math.huge or v == -math.huge then
    return v > 0 and "+Inf" or "-Inf"
  elseif v % 1 == 0 and math.abs(v) < 2 ^ 63 then
    return string.format("%d", v)
  end
  local e
  for prec = 0, 16 do
    e = string.format("%." .. prec .. "e", v)
    if tonumber(e) == v then
      break
    end
  end
  local mant, exp = e:match("^(.-)e([-+]%d+)$")
  exp = tonumber(exp)
  if not fixed and (exp < -4 or exp >= 6) then
    return mant .. "e" .. (exp < 0 and "-" or "+") .. string.format("%02d", math.abs(exp))
  end
  local neg, digits = mant:match("^(-?)(.*)$")
  digits = digits:gsub("%.", "")
  local point = exp + 1 -- digits before the decimal point
  if point <= 0 then
    return neg .. "0." .. string.rep("0", -point) .. digits
  elseif point >= #digits then
    return neg .. digits .. string.rep("0", point - #digits)
  end
  return neg .. digits:sub(1, point) .. "." .. digits:sub(point + 1)
end

number_string = function(v)
  return go_number(v, true)
end

-- A string quoted as Go's %q (strconv.Quote): printable UTF-8 as it is, the rest escaped.
local GO_ESCAPES = { ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t", ["\v"] = "\\v", ["\\"] = "\\\\", ['"'] = '\\"' }
local function go_quote(s)
  return '"' .. s:gsub("[%c\\\"\127]", function(c)
    return GO_ESCAPES[c] or string.format("\\x%02x", c:byte())
  end) .. '"'
end

-- A value as Go's %v prints it: lists [a b], objects map[k:v] (keys sorted), null <nil>.
local function go_value(v)
  local t = type(v)
  if t == "number" then
    return go_number(v)
  elseif t == "nil" or v == NULL then
    return "<nil>"
  elseif t == "table" and not getmetatable(v) then
    local parts = {}
    if typename(v) == "list" then
      for i = 1, #v do
        parts[i] = go_value(v[i])
      end
      return "[" .. table.concat(parts, " ") .. "]"
    end
    for _, k in ipairs(schema.sorted_keys(v)) do
      parts[#parts + 1] = tostring(k) .. ":" .. go_value(v[k])
    end
    return "map[" .. table.concat(parts, " ") .. "]"
  end
  return tostring(v)
end

-- Go's fmt verbs people use in Alloy's format(): %s %d %f %v %q %t %x %%, with width/precision.
-- A secret among the arguments makes the result a secret.
function F.format(fmt, ...)
  local fmt_secret
  fmt, fmt_secret = reveal(fmt)
  fmt = want_string("format", 1, fmt)
  local args, n, i = { ... }, select("#", ...), 0
  local secret = fmt_secret
  for k = 1, n do
    secret = secret or schema.is_secret(args[k])
  end
  local out = fmt:gsub("%%([%-+ #0]*%d*%.?%d*)([%a%%])", function(flags, verb)
    if verb == "%" then
      return "%"
    end
    i = i + 1
    if i > n then
      return "%!" .. verb .. "(MISSING)"
    end
    local v = reveal(args[i])
    if verb == "v" or verb == "s" then
      return string.format("%" .. flags .. "s", go_value(v))
    elseif verb == "q" and type(v) == "string" then
      return go_quote(v)
    elseif verb == "d" and type(v) == "number" and v % 1 == 0 then -- Go's %d takes integers only
      return string.format("%" .. flags .. "d", v)
    elseif (verb == "f" or verb == "e" or verb == "g") and type(v) == "number" then
      return string.format("%" .. flags .. verb, v)
    elseif (verb == "x" or verb == "X") and type(v) == "number" and v % 1 == 0 then
      return string.format("%" .. flags .. verb, v)
    elseif (verb == "x" or verb == "X") and type(v) == "string" then -- Go's: the bytes in hexadecimal
      return string.format("%" .. flags .. "s", (v:gsub(".", function(c)
        return string.format("%02" .. verb, c:byte())
      end)))
    elseif verb == "t" and type(v) == "boolean" then
      return tostring(v)
    end
    local gotype = type(v) == "number" and (v % 1 == 0 and "int" or "float64") or type(v) == "boolean" and "bool"
      or type(v) == "table" and "[]interface {}" or type(v)
    return "%!" .. verb .. "(" .. gotype .. "=" .. go_value(v) .. ")"
  end)
  if secret then
    return schema.secret(out)
  end
  return out
end

function F.join(list, sep)
  want_list("join", 1, list)
  sep = want_string("join", 2, sep)
  local parts = {}
  for i, x in ipairs(list) do
    parts[i] = want_string("join", 1, x)
  end
  return table.concat(parts, sep)
end

function F.split(s, sep)
  s, sep = want_string("split", 1, s), want_string("split", 2, sep)
  local out = {}
  if sep == "" then -- Go's: one string per UTF-8 character
    for c in s:gmatch(UTF8_CHAR) do
      out[#out + 1] = c
    end
    return out
  end
  local init = 1
  while true do
    local a, b = plain_find(s, sep, init)
    if not a then
      out[#out + 1] = s:sub(init)
      return out
    end
    out[#out + 1] = s:sub(init, a - 1)
    init = b + 1
  end
end

function F.to_lower(s)
  return want_string("to_lower", 1, s):lower()
end

function F.to_upper(s)
  return want_string("to_upper", 1, s):upper()
end

-- trim(s, cutset): removes the leading and trailing bytes that are in cutset.
function F.trim(s, cutset)
  s, cutset = want_string("trim", 1, s), want_string("trim", 2, cutset)
  local set = {}
  for k = 1, #cutset do
    set[cutset:byte(k)] = true
  end
  local a, b = 1, #s
  while a <= b and set[s:byte(a)] do
    a = a + 1
  end
  while b >= a and set[s:byte(b)] do
    b = b - 1
  end
  return s:sub(a, b)
end

function F.trim_prefix(s, prefix)
  s, prefix = want_string("trim_prefix", 1, s), want_string("trim_prefix", 2, prefix)
  if prefix ~= "" and s:sub(1, #prefix) == prefix then
    return s:sub(#prefix + 1)
  end
  return s
end

function F.trim_suffix(s, suffix)
  s, suffix = want_string("trim_suffix", 1, s), want_string("trim_suffix", 2, suffix)
  if suffix ~= "" and s:sub(-#suffix) == suffix then
    return s:sub(1, #s - #suffix)
  end
  return s
end

function F.trim_space(s)
  return (want_string("trim_space", 1, s):gsub("^%s+", ""):gsub("%s+$", ""))
end

function F.replace(s, old, new)
  s, old, new = want_string("replace", 1, s), want_string("replace", 2, old), want_string("replace", 3, new)
  if old == "" then -- Go's: new before each UTF-8 character and at the end
    return new .. s:gsub(UTF8_CHAR, "%0" .. new:gsub("%%", "%%%%"))
  end
  local out, init = {}, 1
  while true do
    local a, b = plain_find(s, old, init)
    if not a then
      out[#out + 1] = s:sub(init)
      return table.concat(out)
    end
    out[#out + 1] = s:sub(init, a - 1)
    out[#out + 1] = new
    init = b + 1
  end
end

function F.nonsensitive(v)
  if schema.is_secret(v) then
    return v:reveal()
  end
  return want_string("convert.nonsensitive", 1, v)
end

-- The number of arguments of each function (a negative n: at least -n), as Alloy checks a call.
local ARITY = { concat = -0, coalesce = -0, env = 1, json_decode = 1, json_path = -0, format = -1, join = 2,
  split = 2, to_lower = 1, to_upper = 1, trim = 2, trim_prefix = 2, trim_suffix = 2, trim_space = 1, replace = 3,
  nonsensitive = 1, from_json = 1 }

--- Function name (as written in Alloy) -> implementation.
M.functions = {
  concat = F.concat, ["array.concat"] = F.concat,
  coalesce = F.coalesce,
  env = F.env, ["sys.env"] = F.env,
  json_decode = F.json_decode, ["encoding.from_json"] = F.json_decode,
  json_path = F.json_path, ["encoding.json_path"] = F.json_path,
  format = F.format, ["string.format"] = F.format,
  join = F.join, ["string.join"] = F.join,
  split = F.split, ["string.split"] = F.split,
  to_lower = F.to_lower, ["string.to_lower"] = F.to_lower,
  to_upper = F.to_upper, ["string.to_upper"] = F.to_upper,
  trim = F.trim, ["string.trim"] = F.trim,
  trim_prefix = F.trim_prefix, ["string.trim_prefix"] = F.trim_prefix,
  trim_suffix = F.trim_suffix, ["string.trim_suffix"] = F.trim_suffix,
  trim_space = F.trim_space, ["string.trim_space"] = F.trim_space,
  replace = F.replace, ["string.replace"] = F.replace,
  nonsensitive = F.nonsensitive, ["convert.nonsensitive"] = F.nonsensitive,
}

for name, fn in pairs(M.functions) do
  local n = ARITY[name:match("([%w_]+)$")]
  if n and n ~= 0 then
    local want, exact = math.abs(n), n > 0
    local expected = string.format("%s: expected %s%d argument%s, got %%d", name, exact and "" or "at least ", want,
      want == 1 and "" or "s")
    M.functions[name] = function(...)
      local got = select("#", ...)
      if got < want or (exact and got > want) then
        error(string.format(expected, got), 0)
      end
      return fn(...)
    end
  end
end

--- The first names of the standard library (a reference starting with one is not a component's).
M.NAMESPACES = { sys = true, string = true, array = true, encoding = true, convert = true, constants = true }

-- Operators ------------------------------------------------------------------

-- (a NULL in a decoded object equals a field that is not there: `{ a = null }` is written
-- without it)
local function deep_equal(a, b)
  a, b = reveal(a), reveal(b)
  if a == NULL then
    a = nil
  end
  if b == NULL then
    b = nil
  end
  if type(a) ~= "table" or type(b) ~= "table" then
    return a == b
  end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then
      return false
    end
  end
  for k, v in pairs(b) do
    if a[k] == nil and v ~= NULL then
      return false
    end
  end
  return true
end

--- Alloy's == (deep over lists and objects).
M.eq = deep_equal

--- Alloy's +: numbers add; strings (and secrets: the result is a secret) concatenate.
function M.add(a, b)
  if type(a) == "number" and type(b) == "number" then
    return a + b
  end
  local sa, secret_a = reveal(a)
  local sb, secret_b = reveal(b)
  if type(sa) == "string" and type(sb) == "string" then
    if secret_a or secret_b then
      return schema.secret(sa .. sb)
    end
    return sa .. sb
  end
  error(string.format("cannot add %s and %s", typename(a), typename(b)), 0)
end

local function num(op, a, b)
  if type(a) ~= "number" or type(b) ~= "number" then
    error(string.format("operator %s needs numbers, got %s and %s", op, typename(a), typename(b)), 0)
  end
end

--- The other binary operators; && and || take two bools (Alloy evaluates both sides).
function M.binary(op, a, b)
  if op == "&&" or op == "||" then
    if type(a) ~= "boolean" then
      error(string.format("operator %s needs bools, got %s", op, typename(a)), 0)
    elseif type(b) ~= "boolean" then
      error(string.format("operator %s needs bools, got %s", op, typename(b)), 0)
    end
    if op == "&&" then
      return a and b
    end
    return a or b
  elseif op == "+" then
    return M.add(a, b)
  elseif op == "==" then
    return deep_equal(a, b)
  elseif op == "!=" then
    return not deep_equal(a, b)
  elseif op == "<" or op == "<=" or op == ">" or op == ">=" then
    if not ((type(a) == "number" and type(b) == "number") or (type(a) == "string" and type(b) == "string")) then
      error(string.format("operator %s needs two numbers or two strings, got %s and %s", op, typename(a), typename(b)), 0)
    end
    if op == "<" then
      return a < b
    elseif op == "<=" then
      return a <= b
    elseif op == ">" then
      return a > b
    end
    return a >= b
  end
  num(op, a, b)
  if op == "-" then
    return a - b
  elseif op == "*" then
    return a * b
  elseif op == "/" then
    if b == 0 then
      error("division by zero", 0)
    end
    return a / b
  elseif op == "%" then
    if b == 0 then
      error("modulo by zero", 0)
    end
    return math.fmod(a, b)
  elseif op == "^" then
    return a ^ b
  end
  error("unknown operator " .. tostring(op), 0)
end

--- Alloy's unary operators: ! on a bool, - on a number.
function M.unary(op, v)
  if op == "!" then
    if type(v) ~= "boolean" then
      error("operator ! needs a bool, got " .. typename(v), 0)
    end
    return not v
  end
  if type(v) ~= "number" then
    error("operator - needs a number, got " .. typename(v), 0)
  end
  return -v
end

--- Alloy's field access (obj.name) on a value: an object's field, which must exist.
function M.field(obj, name)
  local kind = typename(obj)
  if kind ~= "object" and not (kind == "list" and next(obj) == nil) then -- {} is an empty object too
    error(string.format("cannot access field %q on %s", name, kind), 0)
  end
  local v = obj[name]
  if v == nil then
    error(string.format("field %q does not exist", name), 0)
  elseif v == NULL then -- a null field (encoding.from_json): it exists, its value is null
    return nil
  end
  return v
end

--- Alloy's / of two integers: Go's integer division, toward zero.
function M.idiv(a, b)
  local q = M.binary("/", a, b)
  return q >= 0 and math.floor(q) or math.ceil(q)
end

--- True when Alloy computes e (a parsed expression) as an integer: integer literals and
--- the arithmetic of integers. (What reads an export or calls a function is not known
--- before it runs: it divides as floats.)
function M.is_int_expr(e)
  if e.int ~= nil then -- computed once per node: a chain of / asks at every level
    return e.int
  end
  local t, int = e.t, false
  if t == "lit" then
    int = type(e.v) == "number" and not e.float
  elseif t == "paren" or (t == "unary" and e.op == "-") then
    int = M.is_int_expr(e.e)
  elseif t == "binary" and (e.op == "+" or e.op == "-" or e.op == "*" or e.op == "/" or e.op == "%") then
    int = M.is_int_expr(e.l) and M.is_int_expr(e.r)
  end
  e.int = int
  return int
end

--- Alloy's indexing: lists from 0 (out of range is an error), objects by key (a missing
--- key is null).
function M.index(obj, idx)
  if type(obj) ~= "table" or schema.is_secret(obj) then
    error(string.format("cannot index %s", typename(obj)), 0)
  end
  local kind = typename(obj)
  if type(idx) == "number" then
    if kind ~= "list" then
      error("an object is indexed by a string, got number", 0)
    elseif idx % 1 ~= 0 or idx < 0 then
      error(string.format("index %s: expected a whole number from 0", tostring(idx)), 0)
    elseif idx >= #obj then
      error(string.format("index %d is out of range of a list of %d", idx, #obj), 0)
    end
    local v = obj[idx + 1]
    if v == NULL then
      return nil
    end
    return v
  elseif kind == "list" and next(obj) ~= nil then
    error("a list is indexed by a number, got " .. typename(idx), 0)
  elseif type(idx) ~= "string" then
    error("an object is indexed by a string, got " .. typename(idx), 0)
  end
  local v = obj[idx]
  if v == NULL then
    return nil
  end
  return v
end

--- The `alloy` helper of Lua pipelines: alloy.to_lower(...), alloy.string.to_lower(...), alloy.add(a, b)...
function M.helper()
  local h = { add = M.add, eq = M.eq, index = M.index, binary = M.binary, unary = M.unary, idiv = M.idiv,
    field = M.field }
  for name, fn in pairs(M.functions) do
    local ns, f = name:match("^(%a+)%.([%w_]+)$")
    if ns then
      h[ns] = h[ns] or {}
      h[ns][f] = fn
    else
      h[name] = fn
    end
  end
  return h
end

return M
