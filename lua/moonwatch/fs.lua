--- moonwatch.fs: the file-system calls Lua needs, in C (runtime/base/fs.c), so
-- that nothing on the event loop shells out to mkdir(1) or find(1).
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local common = require("moonwatch.native.common")

local M = {}

local errbuf = ffi.new("char[512]")
local out = ffi.new("char *[1]")
local out_len = ffi.new("size_t[1]")

--- Creates a directory and its missing parents, as `mkdir -p`.
---@param path string
---@return true|nil ok, string? err "PATH: reason" for the part that could not be made
function M.mkdir_p(path)
  if C.mw_ffi_fs_mkdir_p(path, errbuf, 512) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return true
end

--- The files under dir (any depth, symbolic links to directories not followed)
--- whose names end with suffix, as paths relative to dir, sorted.
---@param dir string
---@param suffix string e.g. ".lua"
---@return string[]|nil paths, string? err when dir cannot be read
function M.find(dir, suffix)
  if C.mw_ffi_fs_find(dir, suffix, out, out_len, errbuf, 512) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return common.take_paths(out[0], out_len[0])
end

return M
