--- moonwatch.native.otlp: OTLP traces from Lua (runtime/otlp/otlp.c): a span batch as an
--- ExportTraceServiceRequest (protobuf or OTLP/JSON), gzip, and the decoding of a request for
--- receivers in tests. Functions return `value` or `nil, err`. Event loop thread only.
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local common = require("moonwatch.native.common")

local M = {}

local ERRLEN, errbuf, err = common.ERRLEN, common.errbuf, common.err
local outp, lenp = ffi.new("uint8_t *[1]"), ffi.new("size_t[1]")
local coutp = ffi.new("char *[1]")

local function take(p, n)
  local s = ffi.string(p, n)
  C.mw_ffi_otlp_free(p)
  return s
end

--- The span batch b as an ExportTraceServiceRequest (json: OTLP/JSON instead of protobuf).
---@param b ffi.cdata* a span batch (moonwatch.batch.traces)
---@param scope_name string
---@param scope_version string
---@param json boolean|nil
---@return string|nil body, string|nil err
function M.encode(b, scope_name, scope_version, json)
  if C.mw_ffi_otlp_encode_traces(b, scope_name, scope_version, json and 1 or 0, outp, lenp, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  return take(outp[0], lenp[0])
end

--- gzip of s.
---@return string|nil gz, string|nil err
function M.gzip(s)
  if C.mw_ffi_otlp_gzip(s, #s, outp, lenp) ~= 0 then
    return nil, "out of memory"
  end
  return take(outp[0], lenp[0])
end

--- A protobuf ExportTraceServiceRequest decoded into JSON text (runtime/otlp/otlp.h tells its
--- shape), refused as the OpenTelemetry Collector's receiver refuses it.
---@return string|nil json, string|nil err
function M.decode(body)
  if C.mw_ffi_otlp_decode_traces(body, #body, coutp, lenp, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  return take(coutp[0], lenp[0])
end

return M
