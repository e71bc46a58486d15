--- moonwatch.batch.profiles: the batch of the profiles signal. Profiles are opaque blobs (a pprof
--- profile.proto, gzipped or not, as scraped) with a label set: nothing between a scrape and a
--- push looks inside them, a scrape makes a few per target and interval (kilobytes to
--- megabytes each), so a plain Lua array is the batch; there is no per-sample hot path a C
--- batch would speed up. A batch is valid during append only; a receiver copies what it keeps
--- (the strings are immutable: keeping a reference is a copy).
---
---   { { labels = { __name__ = "process_cpu", service_name = "x", ... }, raw = "<pprof bytes>",
---       id = "" }, ... }
local M = {}

--- A new, empty batch.
---@return table
function M.new()
  return {}
end

--- Appends a profile with its labels (a map of strings; __name__ is the profile type).
---@param b table
---@param labels table<string, string>
---@param raw string the profile bytes
---@param id string|nil a unique id of the profile ("" when none)
function M.add(b, labels, raw, id)
  b[#b + 1] = { labels = labels, raw = raw, id = id or "" }
end

--- The number of profiles in b.
function M.len(b)
  return #b
end

--- The bytes of the profiles in b.
function M.bytes(b)
  local n = 0
  for _, p in ipairs(b) do
    n = n + #p.raw
  end
  return n
end

return M
