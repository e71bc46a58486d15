--- moonwatch.native.common: what the Lua wrappers over the FFI surface share: one error buffer
--- and its `true` / `nil, err` conversion, closing a handle now instead of at garbage
--- collection, the fsync policies of the record log, a relabel cache's misses, and the
--- NUL-separated path lists C returns. Event loop thread only (the error buffer is shared: its
--- text is read right after the call that wrote it).
local ffi = require("ffi")
local C = require("moonwatch.ffi").C

local M = {}

--- The error buffer every wrapper passes to C (M.errbuf, M.ERRLEN).
M.ERRLEN = 512
M.errbuf = ffi.new("char[?]", M.ERRLEN)

--- The message C wrote into M.errbuf.
---@return string
function M.err()
  return ffi.string(M.errbuf)
end

--- true for a C status of 0, else nil and the message in M.errbuf.
---@param rc integer
---@return true|nil ok, string|nil err
function M.check(rc)
  if rc ~= 0 then
    return nil, M.err()
  end
  return true
end

--- Frees obj.h now with free (not at garbage collection) and forgets it; again: nothing.
---@param free function the C function that frees the handle (the one given to ffi.gc)
function M.close(obj, free)
  if obj.h then
    free(ffi.gc(obj.h, nil))
    obj.h = nil
  end
end

local FSYNC = { never = C.MW_WAL_FSYNC_NEVER, interval = C.MW_WAL_FSYNC_INTERVAL, always = C.MW_WAL_FSYNC_ALWAYS }

--- The record log's fsync policy called name (nil: "never"), or nil, "<what> must be never,
--- interval or always, got <name>".
function M.fsync_policy(name, what)
  local v = FSYNC[name or "never"]
  if not v then
    return nil, what .. " must be never, interval or always, got " .. tostring(name)
  end
  return v
end

--- A { name = value } table of strings as the pairs C takes, "name 0xFF value 0xFF ...", names
--- sorted (deterministic).
---@param t table<string, string>
---@return string
function M.encode_pairs(t)
  local names = {}
  for k in pairs(t) do
    names[#names + 1] = k
  end
  table.sort(names)
  local parts = {}
  for i = 1, #names do
    parts[i] = names[i] .. "\255" .. t[names[i]] .. "\255"
  end
  return table.concat(parts)
end

--- Gives class (a relabel cache over a handle h with idxp = ffi.new("const uint32_t *[1]"))
--- the methods misses() (how many inputs the last apply left to the caller, through the C
--- function misses(h, idxp)) and miss(k) (the input index of miss k, 0-based).
function M.misses_methods(class, misses)
  function class:misses()
    self.nmiss = tonumber(misses(self.h, self.idxp))
    return self.nmiss
  end
  function class:miss(k)
    if k < 0 or k >= self.nmiss then
      error("miss index out of range", 2)
    end
    return self.idxp[0][k]
  end
end

--- The strings of a buffer of len bytes holding NUL-terminated paths one after the other (as
--- mw_ffi_fs_find and mw_ffi_glob return them); frees the buffer (mw_ffi_fs_free).
---@return string[]
function M.take_paths(buf, len)
  local paths, n = {}, tonumber(len)
  local i = 0
  while i < n do
    local p = ffi.string(buf + i)
    paths[#paths + 1] = p
    i = i + #p + 1
  end
  if buf ~= nil then
    C.mw_ffi_fs_free(buf)
  end
  return paths
end

return M
