--- moonwatch.native.filesd: discovery.file's C helpers (runtime/discovery/filesd.c): YAML
--- documents as JSON text (libyaml; bounded, no aliases, errors with line and column) and
--- inotify directory watches that call back on the loop.
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local common = require("moonwatch.native.common")
local core = require("moonwatch.core")

local M = {}

local ERRLEN, errbuf = common.ERRLEN, common.errbuf
local outp, lenp = ffi.new("char *[1]"), ffi.new("size_t[1]")

--- The first YAML document of s as JSON text (scalars as strings, plain null/~/empty as null).
---@param s string
---@param max_out integer|nil bytes of JSON at most (nil: 1 GiB)
---@return string|nil json, string|nil err "line L, column C: reason"
function M.yaml_to_json(s, max_out)
  if C.mw_ffi_filesd_yaml_to_json(s, #s, max_out or 0, outp, lenp, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  local json = ffi.string(outp[0], lenp[0])
  C.mw_ffi_filesd_free(outp[0])
  return json
end

--- The modification time of path (seconds since the epoch), or nil when it cannot be read.
---@param path string
---@return number|nil
function M.mtime(path)
  local t = C.mw_ffi_filesd_mtime(path)
  if t < 0 then
    return nil
  end
  return t
end

local Watch = {}
Watch.__index = Watch

--- A set of directory watches calling fn(paths) (on the loop) with the paths that changed
--- ("" when the kernel's queue overflowed: anything may have); nil, err when inotify is not
--- available.
---@param fn function
---@return table|nil watch, string|nil err
function M.watch(fn)
  local w = C.mw_ffi_fswatch_new(errbuf, ERRLEN)
  if w == nil then
    return nil, ffi.string(errbuf)
  end
  local self = setmetatable({ w = ffi.gc(w, C.mw_ffi_fswatch_free) }, Watch)
  self.io = core.io(C.mw_ffi_fswatch_fd(w), "r", function()
    if self.w and C.mw_ffi_fswatch_drain(self.w, outp, lenp) == 0 and lenp[0] > 0 then
      fn(common.take_paths(outp[0], lenp[0]))
    end
  end)
  return self
end

--- Watches directory dir (again: nothing, unless the directory was removed and made again
--- since: it is then watched anew, so this is called at every refresh). true, or nil, err.
function Watch:add(dir)
  if C.mw_ffi_fswatch_add(self.w, dir, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return true
end

--- Stops watching and frees the descriptor now.
function Watch:close()
  if self.io then
    self.io:close()
    self.io = nil
  end
  common.close({ h = self.w }, C.mw_ffi_fswatch_free)
  self.w = nil
end

return M
