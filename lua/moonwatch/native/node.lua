--- moonwatch.native.node: node_exporter's Linux collectors in C (runtime/node*.c)
--- from Lua, for prometheus.exporter.unix.
-- A collector set is built once from options and collected as often as needed;
-- it is freed by the GC. Event loop thread only.
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local metrics = require("moonwatch.metrics")

local M = {}

local ERRLEN = 512
local errbuf = ffi.new("char[?]", ERRLEN)

local defaults = ffi.new("mw_ffi_node_opts_t")
C.mw_ffi_node_opts_init(defaults)

--- The default of a string option (node_exporter 1.5.0's flag default), e.g.
--- default("collectors") or default("fs_types_exclude"); "" when it has none.
---@param field string a field of mw_ffi_node_opts_t
---@return string
function M.default(field)
  local v = defaults[field]
  return v == nil and "" or ffi.string(v)
end

--- Every collector this build implements, sorted.
---@return string[]
function M.collectors()
  local out = {}
  for name in ffi.string(C.mw_ffi_node_collectors()):gmatch("[^,]+") do
    out[#out + 1] = name
  end
  return out
end

local Set = {}
Set.__index = Set

-- Option fields by their kind, for new().
local NUMBER_FIELDS = { fs_mount_timeout = true }
local FLAG_FIELDS = { netdev_netlink = true, cpu_guest = true, cpu_info = true, stat_softirq = true,
  netclass_ignore_invalid_speed = true, arp_netlink = true }

--- Builds a collector set. opts: fields of mw_ffi_node_opts_t (exporters/node/node.h); strings
--- (collectors is the comma-separated list of enabled collectors), fs_mount_timeout
--- seconds, booleans for the int flags; a field left nil keeps its default.
---@param opts table
---@return table|nil set, string|nil err (unknown collector or option, bad regex)
function M.new(opts)
  local o = ffi.new("mw_ffi_node_opts_t")
  C.mw_ffi_node_opts_init(o)
  local keep = {} -- Lua strings stay alive until mw_ffi_node_new has copied them
  for field, v in pairs(opts) do
    if NUMBER_FIELDS[field] then
      if type(v) ~= "number" then
        return nil, string.format("%s must be a number, got %s", field, type(v))
      end
      o[field] = v
    elseif FLAG_FIELDS[field] then
      o[field] = v and 1 or 0
    else
      if type(v) ~= "string" then
        return nil, string.format("%s must be a string, got %s", tostring(field), type(v))
      end
      local ok = pcall(function()
        o[field] = v
      end)
      if not ok then
        return nil, "unknown node exporter option " .. tostring(field)
      end
      keep[#keep + 1] = v
    end
  end
  local out = ffi.new("mw_node_t *[1]")
  if C.mw_ffi_node_new(o, out, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  local _ = keep
  return setmetatable({ h = ffi.gc(out[0], C.mw_ffi_node_free) }, Set)
end

--- Collects every enabled collector for one request's Accept and Accept-Encoding
--- headers: body, content type, gzipped, errors (the failing collectors, one
--- "collector: message" per line, "" if none); or nil, err.
function Set:collect(accept, accept_encoding)
  local body, content_type, gzipped = metrics.expose_c(C.mw_ffi_node_collect, self.h, accept, accept_encoding)
  if not body then
    return nil, content_type
  end
  local e = C.mw_ffi_node_errors(self.h)
  return body, content_type, gzipped, e[0] == 0 and "" or ffi.string(e)
end

return M
