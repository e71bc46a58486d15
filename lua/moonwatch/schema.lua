--- moonwatch.schema: argument schemas of components, validation and redaction.
-- A schema is a table of argument name -> spec:
--   { type = "string"|"number"|"int"|"uint"|"bool"|"duration"|"secret"|"regex"|"map"|
--            "list"|"targets"|"receivers"|"log_receivers"|"profile_receivers"|"trace_receivers"|"block"|"any"|"function",
--     default = value, required = true, doc = "...",
--     of = spec (list elements; map values, default strings or secrets),
--     single = true (a list given as one value is a list of that value),
--     schema = {...} (block fields),
--     repeated = true (a block given as a list of tables; a single table is accepted),
--     allow_function = true (a repeated block whose elements may also be Lua functions),
--     enum = { "a", "b" }, min = n, max = n (inclusive; durations in seconds),
--     positive = true (greater than 0),
--     check = function(value) return nil | nil, err end }
-- A block schema is { args = {...}, exclusive = {{"a", "b"}}, require_one = {{"a", "b"}},
-- validate = function(block) return nil | nil, err end, positional = "name" }.
-- positional names the argument (a list) that takes the block's positional values, in
-- order: `{ forward_to = {...}, stage.json {...}, stage.drop {...} }` (loki.process).
-- A "tagged" value is made by a helper of the pipeline environment (M.tagged: `stage.json
-- { ... }` is kind "stage", tag "json"); its spec { type = "tagged", kind = "stage",
-- variants = { tag = block schema } } validates its table by the tag's schema, and the
-- problems found in it carry the line where it was written. It validates to
-- { tag = "json", args = {...normalised}, line = n }. "regex" is a string that
-- compiles as an RE2 regex (Go's syntax, as every regex of the runtime).
-- Validation returns the normalised value (defaults filled, durations in
-- seconds, secrets wrapped) and a list of problems "path: what is wrong". Every
-- argument is checked completely here, so a pipeline that validates runs.
-- A check or validate function that raises is reported as an internal error
-- (problem.internal, with its traceback), never passed on.
local duration = require("moonwatch.duration")
local errors = require("moonwatch.errors")
local redact = require("moonwatch.redact")
local receiver = require("moonwatch.receiver")

local M = {}

--- Alloy's null inside a list or an object decoded from JSON (encoding.from_json keeps a
--- null field, as Alloy's): cjson.null, as every decoded JSON of moonwatch has it. Anywhere
--- else null is nil. In arguments a null field is no field (as `{ a = null }` is written in a
--- pipeline), and a null in a list is refused (a Lua list cannot hold nil).
M.NULL = require("cjson").null
local NULL = M.NULL

-- t without its null values (t itself when it has none).
local function without_null(t)
  local copy
  for k, x in pairs(t) do
    if x == NULL then
      if not copy then
        copy = {}
        for k2, x2 in pairs(t) do
          copy[k2] = x2
        end
      end
      copy[k] = nil
    end
  end
  return copy or t
end
M.without_null = without_null

--- A secret value: prints as "(secret)" everywhere; :reveal() gives the value.
local Secret = {}
Secret.__index = Secret
Secret.__tostring = function()
  return "(secret)"
end
Secret.__eq = function(a, b)
  return rawget(a, "v") == rawget(b, "v")
end
function Secret:reveal()
  return rawget(self, "v")
end
M.Secret = Secret

--- Wraps a string as a secret. While the secret lives, moonwatch.redact masks its value
--- in everything moonwatch shows or writes (logs, messages, the API).
function M.secret(v)
  local s = setmetatable({ v = v }, Secret)
  redact.register(s, v)
  return s
end

function M.is_secret(v)
  return getmetatable(v) == Secret
end

--- A tagged value: what `stage.json { ... }` makes in a pipeline (see the header).
local Tagged = {}
Tagged.__index = Tagged
Tagged.__call = function(self)
  error(string.format("%s.%s takes a table { ... }, not a label", self.kind, self.tag), 2)
end
M.Tagged = Tagged

--- A tagged value of kind (e.g. "stage") and tag (e.g. "json") with its argument table, written at line.
---@param kind string
---@param tag string
---@param args any
---@param line integer
function M.tagged(kind, tag, args, line)
  return setmetatable({ kind = kind, tag = tag, args = args, line = line }, Tagged)
end

function M.is_tagged(v)
  return type(v) == "table" and getmetatable(v) == Tagged
end

local function is_array(t)
  if type(t) ~= "table" then
    return false
  end
  local n = 0
  for _ in pairs(t) do
    n = n + 1
  end
  return n == #t
end
M.is_array = is_array

--- Stands for a value known only when the pipeline runs (a function's result,
--- a reference to an export of no fixed type) in static checks: it passes every
--- type, and a block holding one skips its validate function.
M.UNKNOWN = setmetatable({}, { __tostring = function()
  return "(known when running)"
end })


local function describe(v)
  if M.is_secret(v) then
    return "a secret"
  elseif v == M.UNKNOWN then
    return "a value known when running"
  elseif M.is_tagged(v) then
    return string.format("%s.%s { ... }", v.kind, tostring(v.tag))
  elseif receiver.kind_of(v) then
    return receiver.KINDS[v.kind]
  elseif type(v) == "table" and type(v.append) == "function" then
    return "a receiver of no kind (make it with moonwatch.receiver)"
  end
  local t = type(v)
  if v == NULL then
    return "null"
  elseif t == "string" then
    return string.format("string %q", #v > 40 and v:sub(1, 40) .. "..." or v)
  elseif t == "table" then
    return is_array(v) and (#v == 0 and "an empty list" or "a list") or "a table"
  end
  return t .. (t ~= "nil" and t ~= "function" and (" " .. tostring(v)) or "")
end

-- The checker of a list of receivers of one kind. Receivers are told apart by their declared
-- kind (moonwatch.receiver), never by their methods.
local function receiver_list(kind, plural, one, example)
  return function(v)
    if type(v) ~= "table" or not is_array(v) then
      return nil, "expected a list of " .. plural .. ", got " .. describe(v)
    end
    for i, r in ipairs(v) do
      if receiver.kind_of(r) ~= kind and r ~= M.UNKNOWN then
        return nil, string.format("element %d: expected %s (e.g. %s), got %s", i, one, example, describe(r))
      end
    end
    return v
  end
end

--- Edit distance, for "did you mean".
local function distance(a, b)
  local prev = {}
  for j = 0, #b do
    prev[j] = j
  end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

--- The closest name in `names` to `word`, or nil when none is close.
function M.did_you_mean(word, names)
  local best, best_d
  for _, n in ipairs(names) do
    local d = distance(word, n)
    if d <= math.max(2, math.floor(#word / 3)) and (not best_d or d < best_d) then
      best, best_d = n, d
    end
  end
  return best
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys, function(a, b)
    return tostring(a) < tostring(b)
  end)
  return keys
end
M.sorted_keys = sorted_keys

local validate_value

local checkers = {
  string = function(v)
    if type(v) == "string" then
      return v
    end
    return nil, "expected a string, got " .. describe(v)
  end,
  secret = function(v)
    if M.is_secret(v) then
      return v
    elseif type(v) == "string" then
      return M.secret(v)
    end
    return nil, "expected a string (secret), got " .. (type(v) == "nil" and "nil" or type(v))
  end,
  number = function(v)
    if type(v) == "number" then
      return v
    end
    return nil, "expected a number, got " .. describe(v)
  end,
  int = function(v)
    if type(v) == "number" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
      return v
    end
    return nil, "expected an integer, got " .. describe(v)
  end,
  uint = function(v)
    if type(v) == "number" and v == math.floor(v) and v >= 0 and v < 2 ^ 53 then
      return v
    end
    return nil, "expected a non-negative integer, got " .. describe(v)
  end,
  regex = function(v)
    if type(v) ~= "string" then
      return nil, "expected a regex string, got " .. describe(v)
    end
    local ok, err = require("moonwatch.relabel").check_regex(v)
    if not ok then
      return nil, string.format("invalid regex %q: %s", #v > 60 and v:sub(1, 60) .. "..." or v, err)
    end
    return v
  end,
  bool = function(v)
    if type(v) == "boolean" then
      return v
    end
    return nil, "expected true or false, got " .. describe(v)
  end,
  duration = function(v)
    local secs, err = duration.parse(v)
    if not secs then
      return nil, err
    end
    return secs
  end,
  -- a size: bytes as a number, or a string with a unit as Alloy writes one ("1MiB", "512KB",
  -- "100B"; K, M, G, T with or without i are powers of 1024, as Go's units.ParseBase2Bytes)
  bytes = function(v)
    if type(v) == "number" and v >= 0 and v == math.floor(v) and v < 2 ^ 53 then
      return v
    end
    if type(v) == "string" then
      local n, unit = v:match("^%s*(%d+%.?%d*)%s*(%a*)%s*$")
      local mult = ({ [""] = 1, B = 1, K = 2 ^ 10, KB = 2 ^ 10, KiB = 2 ^ 10, M = 2 ^ 20, MB = 2 ^ 20, MiB = 2 ^ 20,
        G = 2 ^ 30, GB = 2 ^ 30, GiB = 2 ^ 30, T = 2 ^ 40, TB = 2 ^ 40, TiB = 2 ^ 40 })[unit or ""]
      if n and mult then
        return math.floor(tonumber(n) * mult)
      end
    end
    return nil, "expected a size (bytes, or a string such as \"1MiB\"), got " .. describe(v)
  end,
  ["function"] = function(v)
    if type(v) == "function" then
      return v
    end
    return nil, "expected a function, got " .. describe(v)
  end,
  any = function(v)
    return v
  end,
  map = function(v)
    if type(v) ~= "table" or (next(v) ~= nil and is_array(v)) then
      return nil, "expected a map of strings, got " .. describe(v)
    end
    v = without_null(v)
    for k, x in pairs(v) do
      if type(k) ~= "string" or (type(x) ~= "string" and not M.is_secret(x)) then
        return nil, string.format("expected a map of strings, but [%s] is %s", tostring(k), describe(x))
      end
    end
    return v
  end,
  targets = function(v)
    if type(v) ~= "table" or not is_array(v) then
      return nil, "expected a list of targets (maps of strings), got " .. describe(v)
    end
    local copied = false
    for i, t in ipairs(v) do
      if t == M.UNKNOWN then -- luacheck: ignore 542
      elseif type(t) ~= "table" then
        return nil, string.format("target %d: expected a map of strings, got %s", i, describe(t))
      end
      local plain = t ~= M.UNKNOWN and without_null(t) or t
      if plain ~= t then -- a null label (a target decoded from JSON) is no label
        if not copied then
          local list = {}
          for j, x in ipairs(v) do
            list[j] = x
          end
          v, copied = list, true
        end
        v[i], t = plain, plain
      end
      for k, x in pairs(t) do
        if type(k) ~= "string" or type(x) ~= "string" then
          return nil, string.format("target %d: label %s: expected a string value, got %s", i,
            tostring(k), describe(x))
        end
      end
    end
    return v
  end,
  -- lists of receivers of one signal kind (moonwatch.receiver): forward_to, write_to...
  receivers = receiver_list("metrics", "metrics receivers", "a metrics receiver",
    "prometheus.remote_write.x.receiver"),
  log_receivers = receiver_list("logs", "log receivers", "a log receiver", "loki.write.x.receiver"),
  profile_receivers = receiver_list("profiles", "profiles receivers", "a profiles receiver",
    "pyroscope.write.x.receiver"), -- Alloy's ProfilesReceiver
  trace_receivers = receiver_list("traces", "otelcol consumers", "an otelcol consumer of traces",
    "otelcol.exporter.otlp.x.input"), -- Alloy's list(otelcol.Consumer)
}

-- Runs a check or validate function fn(value) of a schema. It returns nil or
-- true when value is good, an error message (or nil, message) when it is not.
-- Returns the message, or nil; an error raised is recorded as an internal problem.
local function run_hook(fn, value, path, problems)
  local ok, r1, r2 = xpcall(fn, debug.traceback, value)
  if not ok then
    problems[#problems + 1] = { path = path, msg = errors.message(r1), internal = true, traceback = tostring(r1) }
    return nil
  end
  if r2 ~= nil then
    return tostring(r2)
  elseif type(r1) == "string" then
    return r1
  end
  return nil
end

local function join(path, k)
  return path ~= "" and path .. "." .. k or k
end

local function validate_block(schema, value, path, problems, opts)
  local out = {}
  local positional = schema.positional
  if type(value) ~= "table" or getmetatable(value)
    or (not positional and next(value) ~= nil and is_array(value)) then
    problems[#problems + 1] = { path = path, msg = "expected a block (a table of arguments), got " .. describe(value) }
    return nil
  end
  local before, unknowns = #problems, opts.unknowns
  local names = sorted_keys(schema.args)
  if positional and value[1] ~= nil then
    -- positional values go, in order, to the argument the schema names
    local list = {}
    for i = 1, #value do
      list[i] = value[i]
    end
    if value[positional] ~= nil then
      problems[#problems + 1] = { path = join(path, positional),
        msg = "given both by name and as positional values: use one" }
    end
    local copy = {}
    for k, x in pairs(value) do
      if type(k) ~= "number" or k < 1 or k > #value or k % 1 ~= 0 then
        copy[k] = x
      end
    end
    copy[positional] = list
    value = copy
  end
  for _, k in ipairs(sorted_keys(value)) do
    if type(k) ~= "string" then
      problems[#problems + 1] = { path = path, msg = "unexpected positional value " .. describe(value[k]) }
    elseif not schema.args[k] then
      local hint = M.did_you_mean(k, names)
      problems[#problems + 1] = {
        path = join(path, k),
        msg = "unknown argument" .. (hint and string.format(" (did you mean %q?)", hint) or ""),
      }
    end
  end
  for _, k in ipairs(names) do
    local spec = schema.args[k]
    local p = join(path, k)
    local v = value[k]
    if v == NULL then -- a null field of a decoded object: not given
      v = nil
    end
    if v == nil then
      if spec.required then
        problems[#problems + 1] = { path = p, msg = "missing required argument" }
      elseif spec.default ~= nil then
        local d = spec.default
        if type(d) == "table" then
          d = M.deep_copy(d)
        end
        out[k] = validate_value(spec, d, p, problems, opts)
      elseif spec.type == "block" and not spec.repeated and spec.schema and not spec.optional then
        out[k] = validate_block(spec.schema, {}, p, problems, opts)
      end
    else
      out[k] = validate_value(spec, v, p, problems, opts)
    end
  end
  for _, group in ipairs(schema.exclusive or {}) do
    local set = {}
    for _, k in ipairs(group) do
      if value[k] ~= nil then
        set[#set + 1] = k
      end
    end
    if #set > 1 then
      problems[#problems + 1] = {
        path = path,
        msg = table.concat(set, " and ") .. " are mutually exclusive",
      }
    end
  end
  for _, group in ipairs(schema.require_one or {}) do
    local any = false
    for _, k in ipairs(group) do
      any = any or value[k] ~= nil
    end
    if not any then
      problems[#problems + 1] = {
        path = path,
        msg = #group == 1 and ("needs " .. group[1])
          or ("needs at least one of " .. table.concat(group, ", ", 1, #group - 1) .. " or " .. group[#group]),
      }
    end
  end
  -- The block's own check sees complete, valid values only.
  if schema.validate and #problems == before and opts.unknowns == unknowns then
    local err = run_hook(schema.validate, out, path, problems)
    if err then
      problems[#problems + 1] = { path = path, msg = err }
    end
  end
  return out
end

local function number_text(spec, n)
  if spec.type == "duration" then
    return duration.format(n)
  end
  return tostring(n)
end

-- The range a number or duration must be in (spec.min, spec.max, spec.positive), or nil.
local function range_error(spec, n)
  if type(n) ~= "number" then
    return nil
  end
  if spec.positive and n <= 0 then
    return string.format("must be greater than %s, got %s", number_text(spec, 0), number_text(spec, n))
  end
  if (spec.min and n < spec.min) or (spec.max and n > spec.max) then
    if spec.min and spec.max then
      return string.format("must be between %s and %s, got %s", number_text(spec, spec.min),
        number_text(spec, spec.max), number_text(spec, n))
    elseif spec.min then
      return string.format("must be at least %s, got %s", number_text(spec, spec.min), number_text(spec, n))
    end
    return string.format("must be at most %s, got %s", number_text(spec, spec.max), number_text(spec, n))
  end
  return nil
end

-- A tagged value (M.tagged) by the schema of its tag; its problems carry its line.
local function validate_tagged(spec, v, path, problems, opts)
  if not M.is_tagged(v) or v.kind ~= spec.kind then
    problems[#problems + 1] = { path = path, msg = string.format("expected %s.NAME { ... }, got %s", spec.kind,
      describe(v)) }
    return nil
  end
  local where = v.kind .. "." .. tostring(v.tag)
  local variant = type(v.tag) == "string" and spec.variants[v.tag]
  if not variant then
    local hint = type(v.tag) == "string" and M.did_you_mean(v.tag, sorted_keys(spec.variants))
    problems[#problems + 1] = { path = where, line = v.line, col = v.col, msg = "unknown " .. spec.kind
      .. (hint and string.format(" (did you mean %s.%s?)", spec.kind, hint) or "") }
    return nil
  end
  local before = #problems
  local args = validate_block(variant, v.args, where, problems, opts)
  for i = before + 1, #problems do
    problems[i].line = problems[i].line or v.line
    problems[i].col = problems[i].col or v.col -- an Alloy file's stage block
  end
  return { tag = v.tag, args = args, line = v.line }
end

validate_value = function(spec, v, path, problems, opts)
  if v == M.UNKNOWN then
    opts.unknowns = opts.unknowns + 1
    return v
  end
  if spec.type == "tagged" then
    return validate_tagged(spec, v, path, problems, opts)
  elseif spec.type == "block" then
    if spec.repeated then
      if type(v) == "table" and not getmetatable(v) and (next(v) == nil or is_array(v)) then
        local list = {}
        for i, b in ipairs(v) do
          if type(b) == "function" and spec.allow_function then
            list[i] = b -- e.g. a Lua relabel rule
          elseif b == M.UNKNOWN then
            opts.unknowns = opts.unknowns + 1
            list[i] = b
          else
            list[i] = validate_block(spec.schema, b, string.format("%s[%d]", path, i), problems, opts)
          end
        end
        return list
      end
      if type(v) == "function" and spec.allow_function then
        return { v }
      end
      return { validate_block(spec.schema, v, path, problems, opts) }
    end
    return validate_block(spec.schema, v, path, problems, opts)
  elseif spec.type == "list" then
    if spec.single and v ~= nil and (type(v) ~= "table" or getmetatable(v)) then
      v = { v }
    end
    if type(v) ~= "table" or getmetatable(v) or not is_array(v) then
      problems[#problems + 1] = { path = path, msg = "expected a list, got " .. describe(v) }
      return nil
    end
    local list = {}
    local before, unknowns = #problems, opts.unknowns
    for i, x in ipairs(v) do
      if x == NULL then
        problems[#problems + 1] = { path = string.format("%s[%d]", path, i), msg = "a list cannot hold null in moonwatch" }
      else
        list[i] = validate_value(spec.of, x, string.format("%s[%d]", path, i), problems, opts)
      end
    end
    if spec.check and #problems == before and opts.unknowns == unknowns then
      local err = run_hook(spec.check, list, path, problems)
      if err then
        problems[#problems + 1] = { path = path, msg = err }
      end
    end
    return list
  elseif spec.type == "map" and spec.of then
    if type(v) ~= "table" or getmetatable(v) or (next(v) ~= nil and is_array(v)) then
      problems[#problems + 1] = { path = path, msg = "expected a map (a table of name = value), got " .. describe(v) }
      return nil
    end
    local out = {}
    for _, k in ipairs(sorted_keys(v)) do
      if type(k) ~= "string" then
        problems[#problems + 1] = { path = path, msg = "expected a map (a table of name = value), but it has a "
          .. type(k) .. " key" }
      elseif v[k] == NULL then -- luacheck: ignore 542 (a null field of a decoded object: no entry)
      else
        out[k] = validate_value(spec.of, v[k], string.format("%s[%q]", path, k), problems, opts)
      end
    end
    return out
  end
  local check = checkers[spec.type]
  assert(check, "schema: unknown type " .. tostring(spec.type))
  local out, err = check(v)
  if err == nil and spec.enum then
    local ok = false
    for _, e in ipairs(spec.enum) do
      ok = ok or e == out
    end
    if not ok then
      err = string.format("must be one of %s, got %s", table.concat(spec.enum, ", "), describe(v))
    end
  end
  if err == nil then
    err = range_error(spec, out)
  end
  if err == nil and spec.check then
    local n = #problems
    err = run_hook(spec.check, out, path, problems)
    if #problems > n then
      return nil
    end
  end
  if err then
    problems[#problems + 1] = { path = path, msg = err }
    return nil
  end
  return out
end

--- Validates a table of arguments against a schema ({ args = {...}, exclusive = {...}, validate = fn }).
--- Values may be M.UNKNOWN (static checks): they pass, and the blocks holding them skip validate.
---@return table normalised, table problems  (each { path = "a.b", msg = "...", internal = true|nil,
---   traceback = "..." for an internal one })
function M.validate(schema, value)
  local problems = {}
  local out = validate_block(schema, value or {}, "", problems, { unknowns = 0 })
  return out, problems
end

local check_spec

--- Checks a schema definition itself (for component authors); raises on misuse.
function M.check_definition(schema, where)
  for name, spec in pairs(schema.args or {}) do
    check_spec(spec, where .. ": argument " .. tostring(name))
  end
  for _, key in ipairs({ "exclusive", "require_one" }) do
    for _, group in ipairs(schema[key] or {}) do
      for _, k in ipairs(group) do
        if not (schema.args or {})[k] then
          error(string.format("%s: %s names %s, which is not an argument", where, key, tostring(k)), 0)
        end
      end
    end
  end
end

check_spec = function(spec, where)
  local t = type(spec) == "table" and spec.type
  if t ~= "block" and t ~= "list" and t ~= "tagged" and not checkers[t] then
    error(string.format("%s: unknown type %s", where, tostring(t)), 0)
  end
  if t == "block" then
    local sub = spec.schema or error(where .. ": a block needs a schema", 0)
    M.check_definition(sub, where)
  elseif t == "list" then
    check_spec(spec.of or error(where .. ": a list needs `of` (the element spec)", 0), where .. "[]")
  elseif t == "map" and spec.of then
    check_spec(spec.of, where .. "[]")
  end
  for _, k in ipairs({ "min", "max" }) do
    if spec[k] ~= nil and type(spec[k]) ~= "number" then
      error(string.format("%s: %s must be a number", where, k), 0)
    end
  end
end

function M.deep_copy(v)
  if type(v) ~= "table" or getmetatable(v) then
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    out[k] = M.deep_copy(x)
  end
  return out
end

--- Deep equality of plain values (tables compared by content, others by ==).
function M.equal(a, b)
  if a == b then
    return true
  end
  if type(a) ~= "table" or type(b) ~= "table" or getmetatable(a) or getmetatable(b) then
    return false
  end
  for k, v in pairs(a) do
    if not M.equal(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

--- A JSON-friendly copy of a value with secrets shown as "(secret)", functions
--- and receivers named, durations kept as given.
function M.redact(v, seen)
  if M.is_secret(v) then
    return "(secret)"
  end
  local t = type(v)
  if t == "function" then
    -- a Lua function (a relabel rule, a callback) is named by where it is defined
    -- (moonwatch's own functions are not named: no source path of ours is shown)
    local info = debug.getinfo(v, "S")
    local file = info and info.source:match("^@(.*)$")
    if file and info.linedefined > 0 and not errors.is_source(file) then
      return string.format("(Lua function at %s:%d)", file, info.linedefined)
    end
    return "(function)"
  elseif t == "table" then
    seen = seen or {}
    if seen[v] then
      return "(cycle)"
    end
    seen[v] = true
    local mt = getmetatable(v)
    if mt and mt.__tostring then
      return tostring(v)
    end
    if receiver.kind_of(v) then
      return v.id and ("receiver " .. v.id) or "(receiver)"
    end
    local out = {}
    for k, x in pairs(v) do
      out[k] = M.redact(x, seen)
    end
    seen[v] = nil
    return out
  elseif v == NULL then -- (JSON's null: shown as null)
    return v
  elseif t == "userdata" or t == "cdata" or t == "thread" then
    return "(" .. t .. ")"
  end
  return v
end

return M
