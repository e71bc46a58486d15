--- moonwatch.batch.samples: the samples batch (metrics) as Lua sees it.
-- A samples batch (mw_batch_t cdata, runtime/model/batch.h) is what metrics receivers
-- get: samples (series ref, timestamp ms, value, optional exemplars), histogram
-- samples (native histograms: M.histograms) and the series table they refer to. It is
-- valid only during the receiver's append(batch) call: copy what you keep. The accessors
-- here are the slow path for Lua components (one
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
  if enc == nil then -- out of range, or no memory for the text
    error("samples.labels: no labels for sample " .. tostring(i), 2)
  end
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

-- --- native histograms (runtime/model/histogram.h) -------------------------------------
-- A histogram sample as Lua sees it: a table
--   { labels = { name = value } (when read), ts = ms, float = bool, schema = -4..8 or -53,
--     zero_threshold, zero_count, count, sum, reset_hint = "unknown"|"yes"|"no"|"gauge",
--     positive_spans = { { offset, length }, ... }, negative_spans = { ... },
--     positive_deltas / negative_deltas (integer histograms: bucket count deltas) or
--     positive_counts / negative_counts (float histograms: absolute counts),
--     custom_values = { ... } (schema -53 only), stale = bool (a staleness marker) }
-- Counts are Lua numbers (exact below 2^53).

local RESET = { [0] = "unknown", "yes", "no", "gauge" }
local RESET_NUM = { unknown = 0, yes = 1, no = 2, gauge = 3 }
local hsp = ffi.new("mw_hsample_t")
local herr = ffi.new("char[256]")

--- A new, empty samples batch that owns its series table (freed by the garbage
--- collector): for sources written in Lua and for tests. Fill it with M.add and
--- M.add_histogram, hand it to receivers' append.
---@return ffi.cdata*
function M.new()
  local b = C.mw_ffi_batch_new_owned()
  if b == nil then
    error("out of memory", 2)
  end
  return ffi.gc(b, C.mw_ffi_batch_free)
end

local function series_ref(b, labels)
  if type(labels) == "number" then
    return labels
  end
  if type(labels) ~= "table" then
    error("labels: expected a table of name = value, got " .. type(labels), 3)
  end
  for k, v in pairs(labels) do
    if type(k) ~= "string" or type(v) ~= "string" then
      error(string.format("labels: names and values must be strings (%s = %s)", tostring(k), type(v)), 3)
    end
  end
  local enc = require("moonwatch.native.common").encode_pairs(labels)
  local ref = C.mw_ffi_batch_series_add(b, enc, #enc, herr, 256)
  if ref < 0 then
    error("labels: " .. ffi.string(herr), 3)
  end
  return tonumber(ref)
end

--- The series ref of labels ({ name = value }) in a batch made by M.new (added if new).
---@return integer
function M.series(b, labels)
  return series_ref(b, labels)
end

--- Appends a float sample to a batch made by M.new: labels is a table or a ref from M.series.
function M.add(b, labels, ts_ms, value)
  local ref = series_ref(b, labels)
  if C.mw_ffi_batch_add(b, ref, ts_ms, value) ~= 0 then
    error("out of memory", 2)
  end
end

local function spans_of(t, field, keep)
  local spans = t[field] or {}
  local n = #spans
  if n == 0 then
    return 0, nil
  end
  local a = ffi.new("mw_hspan_t[?]", n)
  for i = 1, n do
    local s = spans[i]
    a[i - 1].offset = s.offset or s[1]
    a[i - 1].length = s.length or s[2]
  end
  keep[#keep + 1] = a
  return n, a
end

local function array_of(ctype, list, keep)
  local n = list and #list or 0
  if n == 0 then
    return 0, nil
  end
  local a = ffi.new(ctype, n, list)
  keep[#keep + 1] = a
  return n, a
end

--- Appends a histogram sample (see the table above; labels, ts are arguments here) to
--- a batch made by M.new. Raises with the validation error ("positive side: spans need
--- 3 buckets, have 2 buckets") when h is not a valid histogram. h.stale = true appends
--- a staleness marker (the rest of h is ignored but float).
function M.add_histogram(b, labels, ts_ms, h)
  local ref = series_ref(b, labels)
  if h.stale then
    -- in C: LuaJIT does not keep a NaN's payload bits
    if C.mw_ffi_batch_add_histogram_stale(b, ref, ts_ms, h.float and 1 or 0) ~= 0 then
      error("out of memory", 2)
    end
    return
  end
  local keep = {}
  local x = ffi.new("mw_histogram_t")
  x.is_float = h.float and 1 or 0
  do
    x.schema = h.schema or 0
    local hint = RESET_NUM[h.reset_hint or "unknown"]
    if not hint then
      error("reset_hint: expected unknown, yes, no or gauge, got " .. tostring(h.reset_hint), 2)
    end
    x.reset_hint = hint
    x.zero_threshold = h.zero_threshold or 0
    x.sum = h.sum or 0
    if h.float then
      x.fcount, x.fzero_count = h.count or 0, h.zero_count or 0
    else
      x.count, x.zero_count = h.count or 0, h.zero_count or 0
    end
    x.n_pos_spans, x.pos_spans = spans_of(h, "positive_spans", keep)
    x.n_neg_spans, x.neg_spans = spans_of(h, "negative_spans", keep)
    if h.float then
      x.n_pos, x.pos_counts = array_of("double[?]", h.positive_counts, keep)
      x.n_neg, x.neg_counts = array_of("double[?]", h.negative_counts, keep)
    else
      x.n_pos, x.pos_deltas = array_of("int64_t[?]", h.positive_deltas, keep)
      x.n_neg, x.neg_deltas = array_of("int64_t[?]", h.negative_deltas, keep)
    end
    x.n_custom, x.custom_values = array_of("double[?]", h.custom_values, keep)
  end
  if C.mw_ffi_batch_add_histogram(b, ref, ts_ms, x, herr, 256) ~= 0 then
    error("histogram: " .. ffi.string(herr), 2)
  end
end

--- Number of histogram samples (native histograms) of the batch.
function M.histogram_count(b)
  return tonumber(C.mw_ffi_batch_histograms(b))
end

local function list(p, n)
  local out = {}
  for i = 0, n - 1 do
    out[i + 1] = tonumber(p[i])
  end
  return out
end

local function spans_list(p, n)
  local out = {}
  for i = 0, n - 1 do
    out[i + 1] = { offset = p[i].offset, length = p[i].length }
  end
  return out
end

--- Histogram sample k (0-based) as a table (see above), labels included.
function M.histogram(b, k)
  if C.mw_ffi_batch_histogram(b, k, hsp) ~= 0 then
    error("histogram index out of range", 2)
  end
  local x = hsp.h
  local enc = C.mw_ffi_batch_series_labels(b, hsp.ref, lenp)
  local labels = {}
  posp[0] = 0
  if enc ~= nil then
    while C.mw_ffi_labels_next(enc, lenp[0], posp, np, nlp, vp, vlp) == 1 do
      labels[ffi.string(np[0], nlp[0])] = ffi.string(vp[0], vlp[0])
    end
  end
  local fl = x.is_float == 1
  local h = { labels = labels, ref = tonumber(hsp.ref), ts = tonumber(hsp.ts_ms), float = fl,
    schema = x.schema, zero_threshold = x.zero_threshold, sum = x.sum,
    reset_hint = RESET[x.reset_hint], stale = C.mw_ffi_batch_histogram_is_stale(x) == 1,
    count = fl and x.fcount or tonumber(x.count), zero_count = fl and x.fzero_count or tonumber(x.zero_count),
    positive_spans = spans_list(x.pos_spans, x.n_pos_spans),
    negative_spans = spans_list(x.neg_spans, x.n_neg_spans),
    custom_values = list(x.custom_values, x.n_custom) }
  if fl then
    h.positive_counts, h.negative_counts = list(x.pos_counts, x.n_pos), list(x.neg_counts, x.n_neg)
  else
    h.positive_deltas, h.negative_deltas = list(x.pos_deltas, x.n_pos), list(x.neg_deltas, x.n_neg)
  end
  return h
end

--- The histogram samples, in order: a list of tables (see M.histogram).
---@return table[]
function M.histograms(b)
  local out = {}
  for k = 0, M.histogram_count(b) - 1 do
    out[k + 1] = M.histogram(b, k)
  end
  return out
end

--- The Prometheus staleness marker value.
M.STALE_NAN = C.mw_ffi_batch_stale_nan()

return M
