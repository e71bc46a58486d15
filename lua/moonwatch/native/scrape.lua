--- moonwatch.native.scrape: scrape targets (runtime/scrape.c) from Lua.
-- A target turns scraped bodies into a body batch and a report batch (up,
-- scrape_duration_seconds, ...), with the target's labels on every series and a
-- cache that remembers series from one scrape to the next. Methods return
-- `value` or `nil, err`; the target's C memory is freed by the GC (or free()).
--
--   local t, err = scrape.target(encoded_labels, { honor_labels = false, ... })
--   local ok, err = t:parse_begin(body, #body, content_type, ts_ms)
--   repeat local rc, err = t:parse_step(4 * 1024 * 1024) until rc ~= false
local ffi = require("ffi")
local C = require("moonwatch.ffi").C

local M = {}

--- Exposition formats for opts.fallback_format.
M.FORMAT_NONE, M.FORMAT_TEXT, M.FORMAT_OPENMETRICS = C.MW_EXPFMT_NONE, C.MW_EXPFMT_TEXT, C.MW_EXPFMT_OPENMETRICS
M.FORMAT_PROTOBUF = C.MW_EXPFMT_PROTOBUF

local ERRLEN = 512
local errbuf = ffi.new("char[?]", ERRLEN)
local optbuf = ffi.new("mw_scrape_opts_t")
local report = ffi.new("double[8]")

local function err()
  return ffi.string(errbuf)
end

local function flag(v)
  return (v and v ~= 0) and 1 or 0
end

-- Fills the module's options struct from a Lua table (C copies it).
local function fill_opts(o)
  if type(o) ~= "table" then
    error("scrape target options must be a table", 3)
  end
  optbuf.honor_labels = flag(o.honor_labels)
  optbuf.honor_timestamps = flag(o.honor_timestamps)
  optbuf.track_timestamps_staleness = flag(o.track_timestamps_staleness)
  optbuf.label_limit = o.label_limit or 0
  optbuf.label_name_length_limit = o.label_name_length_limit or 0
  optbuf.label_value_length_limit = o.label_value_length_limit or 0
  optbuf.sample_limit = o.sample_limit or 0
  optbuf.fallback_format = o.fallback_format or C.MW_EXPFMT_TEXT
  optbuf.utf8_names = flag(o.utf8_names)
  optbuf.native_histograms = flag(o.native_histograms)
  optbuf.classic_histograms = flag(o.classic_histograms)
  optbuf.native_bucket_limit = o.native_bucket_limit or 0
  optbuf.native_min_bucket_factor = o.native_min_bucket_factor or 0
  optbuf.convert_nhcb = flag(o.convert_nhcb)
  return optbuf
end

local Target = {}
Target.__index = Target

--- A new target. labels: the target's labels encoded as name 0xFF value 0xFF pairs
--- (labels starting with __ are left out). opts: honor_labels, honor_timestamps,
--- track_timestamps_staleness, utf8_names (booleans), label_limit,
--- label_name_length_limit, label_value_length_limit, sample_limit (0: none),
--- fallback_format (M.FORMAT_*), native_histograms, classic_histograms (booleans),
--- native_bucket_limit, native_min_bucket_factor (0: none), convert_nhcb (boolean).
---@param labels string
---@param opts table
---@return table|nil target, string|nil err (a bad label name, malformed labels)
function M.target(labels, opts)
  if type(labels) ~= "string" then
    return nil, "scrape target labels must be a string, got " .. type(labels)
  end
  local h = C.mw_ffi_scrape_target_new(labels, #labels, fill_opts(opts), errbuf, ERRLEN)
  if h == nil then
    return nil, err()
  end
  return setmetatable({
    h = ffi.gc(h, C.mw_ffi_scrape_target_free),
    --- what the last parse did (mw_expfmt_stats_t: samples, series_added, parsed, ...)
    stats = ffi.new("mw_expfmt_stats_t"),
  }, Target)
end

--- Changes the options in place (utf8_names is kept).
function Target:set_opts(opts)
  C.mw_ffi_scrape_target_set_opts(self.h, fill_opts(opts))
end

-- body: a Lua string, or a pointer (cdata or lightuserdata) to len bytes.
local function body_ptr(body)
  local t = type(body)
  if t == "string" or t == "cdata" then
    return body
  end
  return ffi.cast("const char *", body)
end

--- Starts a parse of len bytes of body (a string, or a pointer the caller keeps alive
--- until the parse ends) with ts_ms for samples without a timestamp; the parse then
--- goes on with parse_step. true, or nil, err (the scrape failed).
function Target:parse_begin(body, len, content_type, ts_ms)
  if C.mw_ffi_scrape_parse_begin(self.h, body_ptr(body), len, content_type, ts_ms, self.stats, errbuf, ERRLEN)
    ~= 0 then
    return nil, err()
  end
  return true
end

--- Parses about max_bytes more of the body: false while there is more, true when
--- the parse has ended and the scrape succeeded, nil, err when it failed.
function Target:parse_step(max_bytes)
  local rc = C.mw_ffi_scrape_parse_step(self.h, max_bytes, errbuf, ERRLEN)
  if rc == 0 then
    return true
  elseif rc > 0 then
    return false
  end
  return nil, err()
end

--- Ends the parse begun as a failed scrape because of why; returns the error message.
function Target:parse_fail(why)
  C.mw_ffi_scrape_parse_fail(self.h, why, errbuf, ERRLEN)
  return err()
end

--- Forgets the parse begun as if it never began (a cancelled scrape).
function Target:parse_abort()
  C.mw_ffi_scrape_parse_abort(self.h)
end

--- A failed scrape without a body: staleness markers for the previous scrape's series.
function Target:fail(ts_ms)
  C.mw_ffi_scrape_fail(self.h, ts_ms)
end

--- Writes the report series at ts_ms: up, duration, samples scraped, samples after
--- metric relabeling, series added, and with extra (true) timeout, sample limit and
--- body size. true, or nil, err.
function Target:report(ts_ms, up, dur, scraped, post, added, extra, timeout, limit, size)
  report[0], report[1], report[2], report[3], report[4] = up, dur, scraped, post, added
  report[5], report[6], report[7] = timeout or 0, limit or 0, size or 0
  if C.mw_ffi_scrape_report(self.h, ts_ms, report, extra and 8 or 5, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  return true
end

--- End-of-run staleness: markers at ts_ms for every series in the two batches.
--- true, or nil, err.
function Target:stale(ts_ms)
  if C.mw_ffi_scrape_stale(self.h, ts_ms) ~= 0 then
    return nil, "out of memory"
  end
  return true
end

--- The body batch of the last call (owned by the target).
function Target:batch()
  return C.mw_ffi_scrape_batch(self.h)
end

--- The report batch of the last call (owned by the target).
function Target:report_batch()
  return C.mw_ffi_scrape_report_batch(self.h)
end

--- The batches were forwarded: frees their storage until the next scrape.
function Target:clear()
  C.mw_ffi_scrape_clear(self.h)
end

--- Series the target tracks (body and report).
function Target:series()
  return tonumber(C.mw_ffi_scrape_series(self.h))
end

--- Bytes the target's caches hold.
function Target:mem()
  return tonumber(C.mw_ffi_scrape_mem(self.h))
end

--- The target's body scrape cache (for its metric metadata; valid while the target is).
function Target:cache()
  return C.mw_ffi_scrape_target_cache(self.h)
end

return M
