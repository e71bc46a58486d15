--- moonwatch.native.core: the runtime core (runtime/core.c, watchdog.c) from Lua.
-- Part of moonwatch.native, the Lua wrappers over the FFI surface (module headers, runtime/ffi.h), one
-- module per C module, as OpenResty's lua-resty-core: they own the error buffers and
-- the ffi.gc of what C allocates, return `value` or `nil, err` for expected failures
-- and raise only for misuse; components and the rest of Lua call them, never C.mw_ffi_*.
local ffi = require("ffi")
local rt = require("moonwatch.ffi")
local C = rt.C

local M = {}

M.time_now = rt.time_now
M.monotonic = rt.monotonic
M.version = rt.version

local hexbuf = ffi.new("char[65]")
local errbuf = ffi.new("char[256]")

--- SHA-256 of s as 64 lowercase hex digits (the first n of them if n is given).
---@param s string
---@param n integer|nil
---@return string
function M.sha256_hex(s, n)
  C.mw_ffi_sha256_hex(s, #s, hexbuf)
  return ffi.string(hexbuf, n or 64)
end

--- SHA3-256 of s as 64 lowercase hex digits.
---@param s string
---@return string
function M.sha3_256_hex(s)
  C.mw_ffi_sha3_256_hex(s, #s, hexbuf)
  return ffi.string(hexbuf, 64)
end

local symbytesp = ffi.new("size_t[1]")

--- The label symbol table (runtime/base/symtab.h): distinct label names and values held
--- once in the process, and the bytes the table holds.
---@return integer symbols
---@return integer bytes
function M.label_symbols()
  local n = C.mw_ffi_label_symbols(symbytesp)
  return tonumber(n), tonumber(symbytesp[0])
end

--- Gives the pages of free heap memory back to the system (runtime/base/core.h,
--- mw_ffi_heap_trim); true if some were.
---@return boolean
function M.heap_trim()
  return C.mw_ffi_heap_trim() == 1
end

--- Arms the shutdown watchdog (runtime/watchdog.h): a process still alive `timeout`
--- seconds after its first SIGINT/SIGTERM logs one line and exits 1.
---@param timeout number seconds
---@param json boolean log line as JSON (else logfmt)
---@return true|nil ok, string|nil err
function M.watchdog_arm(timeout, json)
  if C.mw_ffi_watchdog_arm(timeout, json and 1 or 0, errbuf, 256) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return true
end

--- Arms the exit guard: an exit that does not come through moonwatch's own path is
--- logged at level error.
---@param json boolean
---@return true|nil ok, string|nil err
function M.exit_guard_arm(json)
  if C.mw_ffi_exit_guard_arm(json and 1 or 0) ~= 0 then
    return nil, "cannot arm the exit guard"
  end
  return true
end

return M
