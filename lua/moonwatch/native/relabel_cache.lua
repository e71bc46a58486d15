--- moonwatch.native.relabel_cache: a relabel program applied to whole batches
--- with a cache of results per input series (runtime/relabelcache.c).
-- A cache hit costs one lookup; without a program, the samples of uncached
-- series are left out as misses for the caller to compute (Lua rules) and put.
--
--   local cache = assert(relabel_cache.new(100000))
--   assert(cache:reset(program))
--   local st, err = cache:apply(batch) -- st.hits, st.misses, st.processed, st.written
--   local out = cache:batch()
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local common = require("moonwatch.native.common")

local M = {}

local ERRLEN, errbuf, check = common.ERRLEN, common.errbuf, common.check

local Cache = {}
Cache.__index = Cache

--- A cache of at most max_size input series (0: 100000).
---@param max_size integer
---@return table|nil cache, string|nil err
function M.new(max_size)
  if type(max_size) ~= "number" or max_size < 0 or max_size > 2 ^ 32 - 1 then
    return nil, "relabel cache size must be a number in [0, 2^32-1], got " .. tostring(max_size)
  end
  local h = C.mw_ffi_relabel_cache_new(max_size)
  if h == nil then
    return nil, "out of memory"
  end
  return setmetatable({
    h = ffi.gc(h, C.mw_ffi_relabel_cache_free),
    st = ffi.new("mw_relabel_stats_t"),
    idxp = ffi.new("const uint32_t *[1]"),
    nmiss = 0,
  }, Cache)
end

--- Sets the program (nil: misses are left to the caller) and empties the cache.
--- The caller keeps the program alive while it is set.
---@return true|nil ok, string|nil err
function Cache:reset(program)
  self.program = program -- kept alive with the cache
  if C.mw_ffi_relabel_cache_reset(self.h, program) ~= 0 then
    return nil, "out of memory"
  end
  return true
end

--- Relabels every sample of batch b into the output batch (cache:batch()). Returns the
--- counts of this call (hits, misses, processed, written: a mw_relabel_stats_t owned by
--- the cache, overwritten by the next apply), or nil, err.
function Cache:apply(b)
  local st = self.st
  st.hits, st.misses, st.processed, st.written = 0, 0, 0, 0
  if C.mw_ffi_relabel_cache_apply(self.h, b, st, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return st
end

--- The counts of the last apply (hits, misses, processed, written) and, since the
--- cache was made, flushes (times it was emptied for growing past its size).
function Cache:stats()
  return self.st
end

--- The output batch of the last apply (owned by the cache, valid until its next apply or reset).
function Cache:batch()
  return C.mw_ffi_relabel_cache_batch(self.h)
end

-- cache:misses(): number of samples the last apply left out as misses (without a program);
-- cache:miss(k): index in the last input batch of miss k (0-based, below cache:misses()).
common.misses_methods(Cache, C.mw_ffi_relabel_cache_misses)

--- Caches the result for sample i of the last input batch (a miss): out, the
--- encoded label set, or "" for dropped. true, or nil, err (invalid label name).
function Cache:put(i, out)
  return check(C.mw_ffi_relabel_cache_put(self.h, i, out, #out, errbuf, ERRLEN))
end

--- Results the cache holds.
function Cache:len()
  return tonumber(C.mw_ffi_relabel_cache_len(self.h))
end

--- Output series the cache holds.
function Cache:outputs()
  return tonumber(C.mw_ffi_relabel_cache_outputs(self.h))
end

return M
