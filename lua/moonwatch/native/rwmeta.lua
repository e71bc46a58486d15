--- moonwatch.native.rwmeta: remote-write metadata sets (runtime/rwmeta.c) from Lua.
-- A set of metric metadata (family name, type, help, unit) collected from scrape
-- caches, deduplicated and sorted by name, encoded as snappy-compressed
-- WriteRequests that carry only metadata. Freed by the GC. Event loop thread only.
local ffi = require("ffi")
local C = require("moonwatch.ffi").C

local M = {}

local ERRLEN = 256
local errbuf = ffi.new("char[?]", ERRLEN)
local bufp, lenp = ffi.new("const uint8_t *[1]"), ffi.new("size_t[1]")

local Set = {}
Set.__index = Set

--- A new, empty set.
---@return table|nil set, string|nil err
function M.new()
  local h = C.mw_ffi_rwmeta_new()
  if h == nil then
    return nil, "out of memory"
  end
  return setmetatable({ h = ffi.gc(h, C.mw_ffi_rwmeta_free) }, Set)
end

--- Empties the set.
function Set:clear()
  C.mw_ffi_rwmeta_clear(self.h)
end

--- Adds the metadata of every family of a scrape cache's last scrape
--- (moonwatch.native.scrape target:cache()). true, or nil, err.
function Set:add_cache(cache)
  if C.mw_ffi_rwmeta_add_cache(self.h, cache, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return true
end

local TYPES = { unknown = 0, counter = 1, gauge = 2, histogram = 3, gaugehistogram = 4, summary = 5, info = 6,
  stateset = 7 }

--- Adds one entry: type (a name such as "counter", or a MW_METRIC_* number), family
--- name, help and unit (nil: ""). true, or nil, err.
function Set:add(mtype, name, help, unit)
  local t = TYPES[mtype] or mtype
  if type(t) ~= "number" then
    return nil, "unknown metric type " .. tostring(mtype)
  end
  if type(name) ~= "string" then
    return nil, "metric family name must be a string"
  end
  help, unit = help or "", unit or ""
  if C.mw_ffi_rwmeta_add(self.h, t, name, #name, help, #help, unit, #unit, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return true
end

--- Distinct entries in the set.
function Set:len()
  return tonumber(C.mw_ffi_rwmeta_len(self.h))
end

local tp = ffi.new("int[1]")
local np, hp, up = ffi.new("const char *[1]"), ffi.new("const char *[1]"), ffi.new("const char *[1]")

--- Entry i (0-based, below len()) in sort order: type (MW_METRIC_* number), name,
--- help, unit; or nil, err when i is out of range.
function Set:get(i)
  if C.mw_ffi_rwmeta_get(self.h, i, tp, np, hp, up) ~= 0 then
    return nil, "metadata entry " .. tostring(i) .. " out of range"
  end
  return tp[0], ffi.string(np[0]), ffi.string(hp[0]), ffi.string(up[0])
end

--- Bytes the set holds.
function Set:mem()
  return tonumber(C.mw_ffi_rwmeta_mem(self.h))
end

--- Encodes entries [first, first + n) (0-based) as one snappy-compressed
--- WriteRequest with no series. body, or nil, err.
function Set:encode(first, n)
  if C.mw_ffi_rwmeta_encode(self.h, first, n, bufp, lenp, nil, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return ffi.string(bufp[0], lenp[0])
end

return M
