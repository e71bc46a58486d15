--- moonwatch.metadata: metric metadata (family name, type, help, unit) as it travels
--- with the data, and the sets prometheus.remote_write's metadata_config sends.
-- A samples batch made by a scrape carries a handle to its target's metadata (what the
-- target's last scrape said in TYPE, HELP and UNIT lines; runtime/model/batch.h,
-- mw_batch_meta), exporters' targets included; prometheus.relabel hands it on with its
-- output batch (also when its rules dropped every sample: the families stay), and any
-- component that forwards the batch it got passes it on. Nothing is kept beside the
-- data: a receiver that wants the metadata gathers it from the batches it receives, as
-- remote_write does with a gatherer (M.gatherer): the metadata of every source that
-- sent it a batch during a round, copied once per source and round, deduplicated and
-- sorted by name. moonwatch.batch.samples.metadata(batch) reads it from Lua.
local C = require("moonwatch.ffi").C
local rwmeta = require("moonwatch.native.rwmeta")

local M = {}

--- A new, empty metadata set (a moonwatch.native.rwmeta set, freed by the GC).
---@return table
function M.new_set()
  local set, err = rwmeta.new()
  if not set then
    error(err, 2)
  end
  return set
end

local Gatherer = {}
Gatherer.__index = Gatherer

--- A gatherer: add(batch) from a receiver's append, take() once per round.
---@return table
function M.gatherer()
  return setmetatable({ cur = M.new_set(), prev = M.new_set(), seen = {}, err = nil }, Gatherer)
end

--- Adds the metadata batch carries to the current round (once per source and round).
--- Call it during the receiver's append (the batch's metadata is valid only then).
---@param b ffi.cdata* a samples batch
function Gatherer:add(b)
  local meta = C.mw_ffi_batch_meta(b)
  if meta == nil then
    return
  end
  local uid = tonumber(C.mw_ffi_scrapecache_uid(meta))
  if self.seen[uid] then
    return
  end
  self.seen[uid] = true
  local ok, err = self.cur:add_cache(meta)
  if not ok then
    self.err = err
  end
end

--- Ends the round: the set gathered in it (sorted by name, valid until the next take but
--- one) and its number of entries, or nil and the error of an add that failed (out of memory).
---@return table|nil set, integer|string n_or_err
function Gatherer:take()
  local set, err = self.cur, self.err
  self.cur, self.prev, self.seen, self.err = self.prev, set, {}, nil
  self.cur:clear()
  if err then
    return nil, err
  end
  return set, set:len()
end

--- Encodes entries [first, first + n) of set (0-based) as a snappy-compressed
--- WriteRequest that carries only metadata.
---@param set table from new_set
---@param first integer
---@param n integer
---@return string|nil body, string|nil err
function M.encode(set, first, n)
  return set:encode(first, n)
end

return M
