--- helpers.rwdecode: decodes Remote-Write requests in test receivers.
local ffi = require("ffi")
local C = require("moonwatch.ffi").C

local M = {}

local errbuf = ffi.new("char[256]")
local n1, n2, n3 = ffi.new("size_t[1]"), ffi.new("size_t[1]"), ffi.new("size_t[1]")
local p1, p2 = ffi.new("const uint8_t *[1]"), ffi.new("const uint8_t *[1]")
local ts, value = ffi.new("int64_t[1]"), ffi.new("double[1]")

--- Decodes a snappy-compressed WriteRequest body: a handle (freed by the GC), or raises.
local function decode(body)
  local out = ffi.new("mw_rwdec_t *[1]")
  assert(C.mw_ffi_rwdec_new(body, #body, out, errbuf, 256) == 0, ffi.string(errbuf))
  return ffi.gc(out[0], C.mw_ffi_rwdec_free)
end

--- Series, samples and metadata entries in a request body.
function M.counts(body)
  local d = decode(body)
  C.mw_ffi_rwdec_counts(d, n1, n2, n3)
  return tonumber(n1[0]), tonumber(n2[0]), tonumber(n3[0])
end

--- The series of a request body: a list of { labels = 'a="1",b="2"', samples = { {ts, value}, ... } }
--- (labels in the request's order, ts in ms).
function M.series(body)
  local d = decode(body)
  C.mw_ffi_rwdec_counts(d, n1, n2, n3)
  local out = {}
  for i = 0, tonumber(n1[0]) - 1 do
    assert(C.mw_ffi_rwdec_series(d, i, n1, n2) == 0)
    local nl, ns = tonumber(n1[0]), tonumber(n2[0])
    local labels, samples = {}, {}
    for j = 0, nl - 1 do
      assert(C.mw_ffi_rwdec_label(d, i, j, p1, n1, p2, n2) == 0)
      labels[#labels + 1] = ffi.string(p1[0], n1[0]) .. "=" .. string.format("%q", ffi.string(p2[0], n2[0]))
    end
    for j = 0, ns - 1 do
      assert(C.mw_ffi_rwdec_sample(d, i, j, ts, value) == 0)
      samples[#samples + 1] = { tonumber(ts[0]), value[0] }
    end
    out[#out + 1] = { labels = table.concat(labels, ","), samples = samples }
  end
  return out
end

return M
