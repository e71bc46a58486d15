--- moonwatch.ffi: the FFI surface of the runtime, declared once: one cdef generated at build time
-- from the FFI blocks of the module headers that runtime/ffi.h lists.
-- `local C = require("moonwatch.ffi").C` gives the runtime's exported functions.
local ffi = require("ffi")

ffi.cdef("const char *mw_ffi_cdef(void);")
ffi.cdef(ffi.string(ffi.C.mw_ffi_cdef()))

local M = { C = ffi.C }

--- Wall-clock seconds since the epoch.
---@return number
function M.time_now()
  return ffi.C.mw_ffi_time_now()
end

--- Monotonic seconds.
---@return number
function M.monotonic()
  return ffi.C.mw_ffi_time_monotonic()
end

--- moonwatch's version and git revision.
---@return string version, string revision
function M.version()
  return ffi.string(ffi.C.mw_ffi_version()), ffi.string(ffi.C.mw_ffi_revision())
end

return M
