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

local cwdbuf = ffi.new("char[4096]")

--- The process's working directory.
---@return string|nil cwd, string? err
function M.getcwd()
  if C.mw_ffi_fs_getcwd(cwdbuf, 4096, errbuf, 512) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return ffi.string(cwdbuf)
end

--- path made absolute and clean, as Go's filepath.Abs: a relative path is joined to the
--- working directory (cwd, or the process's), then "." and empty elements are dropped and
--- ".." takes the element before it away (lexically: symbolic links are not resolved).
---@param path string
---@param cwd string|nil
---@return string|nil abs, string? err
function M.abs(path, cwd)
  if path:sub(1, 1) ~= "/" then
    local err
    if not cwd then
      cwd, err = M.getcwd()
      if not cwd then
        return nil, err
      end
    end
    path = cwd .. "/" .. path
  end
  local parts, n = {}, 0
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then
      if n > 0 then
        parts[n] = nil
        n = n - 1
      end
    elseif seg ~= "." then
      n = n + 1
      parts[n] = seg
    end
  end
  return "/" .. table.concat(parts, "/")
end

return M
