--- moonwatch.native.logrelabel: a relabel program applied to log-entry batches with a cache
--- of results per stream label set (runtime/relabel/logcache.c), for loki.relabel.
-- The rules run once per distinct stream the cache has not seen; without a program (Lua
-- function rules), those streams are left out as misses for the caller to compute and put.
--
--   local c = assert(logrelabel.new(10000))
--   c:reset(program, 10000)
--   local st = assert(c:apply(batch)) -- st.processed, st.written, st.hits, st.misses
--   local out = c:batch()
local ffi = require("ffi")
local C = require("moonwatch.ffi").C

local M = {}

local ERRLEN = 512
local errbuf = ffi.new("char[?]", ERRLEN)

local Cache = {}
Cache.__index = Cache

--- A cache of at most max_size stream results.
---@param max_size integer
---@return table|nil cache, string|nil err
function M.new(max_size)
  local h = C.mw_ffi_logrelabel_new(max_size)
  if h == nil then
    return nil, "out of memory"
  end
  return setmetatable({
    h = ffi.gc(h, C.mw_ffi_logrelabel_free),
    st = ffi.new("mw_logrelabel_stats_t"),
    idxp = ffi.new("const uint32_t *[1]"),
    nmiss = 0,
  }, Cache)
end

--- Sets the program (nil: misses are left to the caller) and the size; empties the cache.
function Cache:reset(program, max_size)
  self.program = program -- kept alive with the cache
  C.mw_ffi_logrelabel_reset(self.h, program, max_size)
end

--- Relabels batch b into the output batch (cache:batch()); the counts of this call (a
--- struct owned by the cache, overwritten by the next apply), or nil, err.
function Cache:apply(b)
  if C.mw_ffi_logrelabel_apply(self.h, b, self.st, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return self.st
end

--- The output batch of the last apply (owned by the cache, valid until its next apply).
function Cache:batch()
  return C.mw_ffi_logrelabel_batch(self.h)
end

--- Number of streams of the last input left to the caller.
function Cache:misses()
  self.nmiss = tonumber(C.mw_ffi_logrelabel_misses(self.h, self.idxp))
  return self.nmiss
end

--- The stream index (in the last input) of miss k (0-based).
function Cache:miss(k)
  if k < 0 or k >= self.nmiss then
    error("miss index out of range", 2)
  end
  return self.idxp[0][k]
end

--- Caches the result for stream s of the last input: pairs (moonwatch.relabel.encode's
--- bytes), "" for dropped. true, or nil, err.
function Cache:put(s, pairs)
  if C.mw_ffi_logrelabel_put(self.h, s, pairs, #pairs, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return true
end

--- Results the cache holds.
function Cache:len()
  return tonumber(C.mw_ffi_logrelabel_len(self.h))
end

return M
