--- moonwatch.batch.samples: the samples batch (metrics) as Lua sees it.
-- A samples batch (mw_batch_t cdata, runtime/batch.h) is what metrics receivers
-- get: samples (series ref, timestamp ms, value, optional exemplars) and the series
-- table they refer to. It is valid only during the receiver's append(batch) call:
-- copy what you keep. The accessors here are the slow path for Lua components (one
-- FFI call per sample); C components take the whole batch in one call.
-- (moonwatch.batch is the same module, under its older name.)
--
--   receiver = require("moonwatch.receiver").metrics(ctx.id, function(_, batch)
--     for _, labels, ts, value in require("moonwatch.batch.samples").samples(batch) do ... end
--   end)
local ffi = require("ffi")
local C = require("moonwatch.ffi").C

local M = {}

local lenp = ffi.new("size_t[1]")
local posp = ffi.new("size_t[1]")
local np, vp = ffi.new("const char *[1]"), ffi.new("const char *[1]")
local nlp, vlp = ffi.new("size_t[1]"), ffi.new("size_t[1]")

--- Number of samples.
function M.len(b)
  return tonumber(C.mw_ffi_batch_len(b))
end

--- The labels of sample i (0-based) as a table name -> value.
function M.labels(b, i)
  local enc = C.mw_ffi_batch_labels(b, i, lenp)
  local out = {}
  posp[0] = 0
  while C.mw_ffi_labels_next(enc, lenp[0], posp, np, nlp, vp, vlp) == 1 do
    out[ffi.string(np[0], nlp[0])] = ffi.string(vp[0], vlp[0])
  end
  return out
end

--- Number of exemplars (OpenMetrics) of the batch.
function M.exemplar_count(b)
  return tonumber(C.mw_ffi_batch_exemplars(b))
end

--- The timestamp (ms) of sample i (0-based).
function M.ts(b, i)
  return tonumber(C.mw_ffi_batch_ts(b, i))
end

--- The value of sample i (0-based).
function M.value(b, i)
  return C.mw_ffi_batch_value(b, i)
end

--- Whether sample i (0-based) is a staleness marker.
function M.is_stale(b, i)
  return C.mw_ffi_batch_is_stale(b, i) == 1
end

--- Iterates the samples: for i, labels, ts_ms, value, stale in M.samples(b).
function M.samples(b)
  local n = M.len(b)
  local i = -1
  return function()
    i = i + 1
    if i >= n then
      return nil
    end
    return i, M.labels(b, i), tonumber(C.mw_ffi_batch_ts(b, i)), C.mw_ffi_batch_value(b, i),
      C.mw_ffi_batch_is_stale(b, i) == 1
  end
end

local idxp, encp = ffi.new("size_t[1]"), ffi.new("const uint8_t *[1]")
local tsp, valp = ffi.new("int64_t[1]"), ffi.new("double[1]")

--- The exemplars (OpenMetrics), in sample order: a list of
--- { index = sample index (0-based), labels = { name = value }, ts = ms, value = v }.
---@return table[]
function M.exemplars(b)
  local out = {}
  for k = 0, tonumber(C.mw_ffi_batch_exemplars(b)) - 1 do
    C.mw_ffi_batch_exemplar(b, k, idxp, encp, lenp, tsp, valp)
    local labels = {}
    posp[0] = 0
    while C.mw_ffi_labels_next(encp[0], lenp[0], posp, np, nlp, vp, vlp) == 1 do
      labels[ffi.string(np[0], nlp[0])] = ffi.string(vp[0], vlp[0])
    end
    out[#out + 1] = { index = tonumber(idxp[0]), labels = labels, ts = tonumber(tsp[0]), value = valp[0] }
  end
  return out
end

local outp = ffi.new("char *[1]")
local outlen = ffi.new("size_t[1]")

--- The samples as exposition lines with timestamps ("text" or "openmetrics").
function M.write(b, format)
  if C.mw_ffi_batch_write(b, format == "openmetrics" and 1 or 0, outp, outlen) ~= 0 then
    error("out of memory")
  end
  local s = ffi.string(outp[0], outlen[0])
  C.mw_ffi_metrics_buf_free(outp[0])
  return s
end

local TYPES = { [0] = "unknown", "counter", "gauge", "histogram", "gaugehistogram", "summary", "info",
  "stateset" }
local mnp, mhp, mup = ffi.new("const char *[1]"), ffi.new("const char *[1]"), ffi.new("const char *[1]")
local mnl, mhl, mul, mtp = ffi.new("size_t[1]"), ffi.new("size_t[1]"), ffi.new("size_t[1]"), ffi.new("int[1]")

--- Whether the batch carries metric metadata (a scrape target's; see M.metadata).
function M.has_metadata(b)
  return C.mw_ffi_batch_meta(b) ~= nil
end

--- The metric metadata the batch carries (moonwatch.metadata): a list of
--- { name = family, type = "counter"|"gauge"|..., help = text, unit = text }, empty
--- when it carries none. A component that forwards the batch itself passes it on.
---@return table[]
function M.metadata(b)
  local out = {}
  local meta = C.mw_ffi_batch_meta(b)
  if meta == nil then
    return out
  end
  for i = 0, tonumber(C.mw_ffi_scrapecache_meta_len(meta)) - 1 do
    if C.mw_ffi_scrapecache_meta_get(meta, i, mnp, mnl, mtp, mhp, mhl, mup, mul) == 0 then
      out[#out + 1] = { name = ffi.string(mnp[0], mnl[0]), type = TYPES[mtp[0]] or "unknown",
        help = ffi.string(mhp[0], mhl[0]), unit = ffi.string(mup[0], mul[0]) }
    end
  end
  return out
end

--- The Prometheus staleness marker value.
M.STALE_NAN = C.mw_ffi_batch_stale_nan()

return M
