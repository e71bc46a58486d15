--- moonwatch.native.pyroscope: Pyroscope's push API from Lua (runtime/pyroscope/push.c):
--- PushRequest encoding for pyroscope.write, decoding for receivers and tests. Event loop thread
--- only.
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local common = require("moonwatch.native.common")

local M = {}

local ERRLEN, errbuf, err = common.ERRLEN, common.errbuf, common.err

-- name NUL value NUL ... of a label map, names sorted; and the pair count.
local function pack(labels)
  local names = {}
  for k in pairs(labels) do
    names[#names + 1] = k
  end
  table.sort(names)
  local parts = {}
  for i, k in ipairs(names) do
    parts[i] = k .. "\0" .. labels[k] .. "\0"
  end
  return table.concat(parts), #names
end

--- The PushRequest of profiles: a list of { labels = { name = value }, raw = bytes, id = "" },
--- one series each. Returns the protobuf body, or nil, err.
---@param profiles table[]
---@return string|nil body, string|nil err
function M.encode_push(profiles)
  local e = C.mw_ffi_pyroenc_new()
  if e == nil then
    return nil, "out of memory"
  end
  e = ffi.gc(e, C.mw_ffi_pyroenc_free)
  for _, p in ipairs(profiles) do
    local packed, n = pack(p.labels)
    if C.mw_ffi_pyroenc_series(e, packed, n, p.raw, #p.raw, p.id or "") ~= 0 then
      return nil, "out of memory"
    end
  end
  local out, len = ffi.new("const uint8_t *[1]"), ffi.new("size_t[1]")
  if C.mw_ffi_pyroenc_finish(e, out, len, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  return ffi.string(out[0], len[0])
end

--- Decodes and checks a PushRequest (as Pyroscope's distributor): a list of series
--- { labels = { { name, value }, ... } (in the order sent), samples = { { raw, id } } }, or
--- nil, err.
---@param body string
---@return table[]|nil series, string|nil err
function M.decode_push(body)
  local out = ffi.new("mw_pyrodec_t *[1]")
  if C.mw_ffi_pyrodec_new(body, #body, out, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  local d = ffi.gc(out[0], C.mw_ffi_pyrodec_free)
  local series = {}
  local nl, ns = ffi.new("size_t[1]"), ffi.new("size_t[1]")
  local name, value, id = ffi.new("const char *[1]"), ffi.new("const char *[1]"), ffi.new("const char *[1]")
  local raw, rawlen = ffi.new("const uint8_t *[1]"), ffi.new("size_t[1]")
  for i = 0, tonumber(C.mw_ffi_pyrodec_series(d)) - 1 do
    C.mw_ffi_pyrodec_info(d, i, nl, ns)
    local s = { labels = {}, samples = {} }
    for j = 0, tonumber(nl[0]) - 1 do
      C.mw_ffi_pyrodec_label(d, i, j, name, value)
      s.labels[j + 1] = { ffi.string(name[0]), ffi.string(value[0]) }
    end
    for k = 0, tonumber(ns[0]) - 1 do
      C.mw_ffi_pyrodec_sample(d, i, k, raw, rawlen, id)
      s.samples[k + 1] = { raw = ffi.string(raw[0], rawlen[0]), id = ffi.string(id[0]) }
    end
    series[#series + 1] = s
  end
  return series
end

return M
