--- moonwatch.native.jsonx: JSON value extraction (runtime/logproc/jsonx.c) for Lua strings:
-- paths of field names and array indexes are compiled once; each run validates a whole
-- document in one pass and gives the values of the paths, without decoding the document.
--
--   local jsonx = require("moonwatch.native.jsonx")
--   local x = assert(jsonx.new({ { "level" }, { "req", "path" }, { "tags", 0 } }))
--   local ok = x:run('{"level":"warn","req":{"path":"/a"},"tags":["x"]}')
--   x:kind(1), x:text(1)  --> "string", "warn"  (kinds: string number true false null object array)
local ffi = require("ffi")
local C = require("moonwatch.ffi").C

local M = {}

M.MAX_PATHS = 64

local ERRLEN = 256
local errbuf = ffi.new("char[?]", ERRLEN)
local KINDS = { [0] = false, "string", "number", "true", "false", "null", "object", "array" }

local X = {}
X.__index = X

--- Compiles paths: each a list of steps, a string (a field name) or a non-negative integer
--- (an array index, 0-based). At most M.MAX_PATHS paths.
---@param paths table[]
---@return table|nil extractor, string|nil err
function M.new(paths)
  local n, total = #paths, 0
  for _, p in ipairs(paths) do
    total = total + #p
  end
  local steps = ffi.new("mw_ffi_jsonx_step_t[?]", math.max(total, 1))
  local lens = ffi.new("uint32_t[?]", math.max(n, 1))
  local k = 0 -- (the key strings stay alive in paths while C copies them)
  for i, p in ipairs(paths) do
    lens[i - 1] = #p
    for _, st in ipairs(p) do
      if type(st) == "string" then
        steps[k].key, steps[k].key_len = st, #st
      elseif type(st) == "number" and st >= 0 and st % 1 == 0 then
        steps[k].key, steps[k].index = nil, st
      else
        return nil, string.format("path %d: a step must be a name or an index >= 0", i)
      end
      k = k + 1
    end
  end
  local x = C.mw_ffi_jsonx_new(steps, lens, n, errbuf, ERRLEN)
  if x == nil then
    return nil, ffi.string(errbuf)
  end
  return setmetatable({ x = ffi.gc(x, C.mw_ffi_jsonx_free), n = n, out = ffi.new("mw_ffi_jsonx_value_t[?]",
    math.max(n, 1)), scratch = nil, cap = 0, doc = nil }, X)
end

--- Reads doc: true when it is one valid JSON object (or null); then kind(i) and text(i) give path i.
---@param doc string
---@return boolean
function X:run(doc)
  self.doc = doc
  return C.mw_ffi_jsonx_run(self.x, doc, #doc, self.out) == 0
end

--- The kind of path i's value in the last document: "string", "number", "true", "false",
--- "null", "object", "array", or false when it is not there.
function X:kind(i)
  return KINDS[self.out[i - 1].type]
end

--- The text of path i's value: a string's bytes (escapes resolved), or the JSON text of any
--- other kind; nil when it is not there.
function X:text(i)
  local v = self.out[i - 1]
  if v.type == 0 then
    return nil
  end
  local s, len = tonumber(v.start), tonumber(v.len)
  if v.escaped == 0 then
    return self.doc:sub(s + 1, s + len)
  end
  if self.cap < len then
    self.cap = math.max(len, 256)
    self.scratch = ffi.new("char[?]", self.cap)
  end
  local m = C.mw_ffi_jsonx_unescape(ffi.cast("const char *", self.doc) + s, len, self.scratch)
  return ffi.string(self.scratch, m)
end

return M
