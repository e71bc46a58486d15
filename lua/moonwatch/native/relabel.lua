--- moonwatch.native.relabel: relabel programs (runtime/relabel.c) from Lua.
-- A list of rule tables is compiled once into a C program (PCRE2-JIT regexes with
-- RE2 semantics, fully anchored), freed by the GC; applying it to a label table
-- is the slow path (for Lua tables): batches go through moonwatch.native.relabel_cache.
local ffi = require("ffi")
local C = require("moonwatch.ffi").C

local M = {}

local ERRLEN = 512
local errbuf = ffi.new("char[?]", ERRLEN)

--- Checks that re compiles as an RE2 regex (Go's syntax, as every regex of the runtime).
---@param re string
---@return true|nil ok, string|nil err
function M.check_regex(re)
  if type(re) ~= "string" then
    return nil, "regex must be a string, got " .. type(re)
  end
  if C.mw_ffi_regex_check(re, #re, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return true
end

local function str(s, keep)
  keep[#keep + 1] = s
  return { s, #s }
end

local function field(r, name, i)
  local v = r[name]
  if type(v) ~= "string" then
    return nil, string.format("rule %d: %s must be a string, got %s", i, name, type(v))
  end
  return v
end

--- Compiles a list of rule tables (source_labels, separator, regex, modulus,
--- target_label, replacement, action; defaults filled in, as the `rule` block
--- schema does) into a C program (freed by the GC).
---@param rules table[]
---@return ffi.cdata*|nil program, string|nil err naming the rule (1-based) and field
function M.compile(rules)
  local n = #rules
  local keep = {}
  local arr = ffi.new("mw_ffi_relabel_rule_t[?]", math.max(n, 1))
  for i, r in ipairs(rules) do
    if type(r) ~= "table" then
      return nil, string.format("rule %d: must be a table, got %s", i, type(r))
    end
    local sl = r.source_labels or {}
    local src = ffi.new("mw_ffi_relabel_str_t[?]", math.max(#sl, 1))
    keep[#keep + 1] = src
    for j, name in ipairs(sl) do
      if type(name) ~= "string" then
        return nil, string.format("rule %d: source_labels[%d] must be a string, got %s", i, j, type(name))
      end
      src[j - 1] = str(name, keep)
    end
    local rule = arr[i - 1]
    rule.source_labels = src
    rule.n_source_labels = #sl
    for _, f in ipairs({ "separator", "regex", "replacement", "target_label", "action" }) do
      local v, ferr = field(r, f, i)
      if not v then
        return nil, ferr
      end
      rule[f] = str(v, keep)
    end
    rule.modulus = tonumber(r.modulus) or 0
  end
  local out = ffi.new("mw_ffi_relabel_program_t *[1]")
  if C.mw_ffi_relabel_program_new(arr, n, out, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return ffi.gc(out[0], C.mw_ffi_relabel_program_free)
end

local scratch = ffi.gc(C.mw_ffi_relabel_scratch_new(), C.mw_ffi_relabel_scratch_free)
local resp = ffi.new("const mw_ffi_relabel_label_t *[1]")

--- Applies a compiled program to a label table (name -> value strings): the new
--- table, or nil when the rules drop the series. Raises on out of memory.
---@param program ffi.cdata* from compile
---@param labels table<string, string>
---@return table|nil
function M.apply(program, labels)
  local names = {}
  for k in pairs(labels) do
    names[#names + 1] = k
  end
  table.sort(names)
  local arr = ffi.new("mw_ffi_relabel_label_t[?]", math.max(#names, 1))
  for i, k in ipairs(names) do
    local v = labels[k]
    arr[i - 1].name, arr[i - 1].name_len = k, #k
    arr[i - 1].value, arr[i - 1].value_len = v, #v
  end
  local kept = C.mw_ffi_relabel_apply(program, scratch, arr, #names)
  if kept < 0 then
    error("out of memory")
  end
  local _ = labels -- the strings stay alive until here
  if kept == 0 then
    return nil
  end
  local n = C.mw_ffi_relabel_result(scratch, resp)
  local out = {}
  for i = 0, n - 1 do
    local l = resp[0][i]
    out[ffi.string(l.name, l.name_len)] = ffi.string(l.value, l.value_len)
  end
  return out
end

return M
