--- moonwatch.metadata: the source of metric metadata (family name, type,
--- help, unit) that prometheus.remote_write sends with metadata_config, as
--- Prometheus's MetadataWatcher reads it from the scrape manager's active
--- targets, routed as in Alloy: a remote_write sends the metadata of the
--- targets whose samples reach it through the pipeline.
-- prometheus.scrape adds each target when it starts (with its forward_to) and
-- deletes it when it goes (removed, or the component stops), so nothing is
-- kept for a removed target. A receiver that forwards what it gets (as
-- prometheus.relabel does) says where with a `downstream` function returning
-- its forward_to; metadata passes through a receiver without one no further.
-- Nothing happens on the scrape path: the metadata stays in each target's
-- scrape cache (runtime/scrape/cache.c) and is only walked, in C, when a sender
-- collects it (once per send_interval). Exporters' targets are scraped by the
-- same component, so their metadata is included.
local rwmeta = require("moonwatch.native.rwmeta")

local M = {}

-- [target cdata] = function returning the receivers its samples are forwarded
-- to. The key keeps the target alive while it is here.
local targets = {}
local count = 0

--- Adds a scrape target whose metadata is to be collected.
---@param target table a moonwatch.native.scrape target
---@param forward_to fun(): table returns the receivers the target's samples go to (read at each collect)
function M.add(target, forward_to)
  if not targets[target] then
    count = count + 1
  end
  targets[target] = forward_to
end

--- Deletes a target (unknown ones are ignored).
---@param target table a moonwatch.native.scrape target
function M.del(target)
  if targets[target] then
    targets[target] = nil
    count = count - 1
  end
end

--- Number of targets registered.
---@return integer
function M.targets()
  return count
end

--- A new, empty metadata set (a moonwatch.native.rwmeta set, freed by the GC).
---@return table
function M.new_set()
  local set, err = rwmeta.new()
  if not set then
    error(err, 2)
  end
  return set
end

-- Whether one of receivers is sink (an id), directly or through downstream
-- functions; seen guards against cycles.
local function reaches(receivers, sink, seen)
  for _, r in ipairs(receivers) do
    if r.id == sink then
      return true
    end
    if r.downstream and not seen[r] then
      seen[r] = true
      if reaches(r.downstream() or {}, sink, seen) then
        return true
      end
    end
  end
  return false
end

--- Empties set and fills it with the metadata of the last scrape of every
--- registered target whose samples reach the receiver with id sink (every
--- target if sink is nil), deduplicated and sorted by name.
---@param set table from new_set
---@param sink string|nil a receiver's id (a remote_write's component id)
---@return integer|nil entries, string|nil err
function M.collect(set, sink)
  set:clear()
  local routed = {} -- [forward_to function] = reaches sink
  for t, forward_to in pairs(targets) do
    local ok = sink == nil
    if not ok then
      ok = routed[forward_to]
      if ok == nil then
        ok = reaches(forward_to(), sink, {})
        routed[forward_to] = ok
      end
    end
    if ok then
      local added, err = set:add_cache(t:cache())
      if not added then
        return nil, err
      end
    end
  end
  return set:len()
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
