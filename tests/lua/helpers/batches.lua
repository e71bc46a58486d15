--- helpers.batches: builds sample batches from exposition text for specs.
local ffi = require("ffi")
local C = require("moonwatch.ffi").C

local M = {}

local errbuf = ffi.new("char[512]")

--- A batch holding the samples of body (text format), at ts_ms; keep the
--- returned target alive while the batch is used. utf8: names outside the legacy grammar too.
function M.from_text(body, ts_ms, utf8)
  local opts = ffi.new("mw_scrape_opts_t", { honor_labels = 1, honor_timestamps = 1, fallback_format = 1,
    utf8_names = utf8 and 1 or 0 })
  local t = ffi.gc(C.mw_ffi_scrape_target_new("", 0, opts, errbuf, 512), C.mw_ffi_scrape_target_free)
  assert(C.mw_ffi_scrape_parse(t, body, #body, "text/plain", ts_ms or 1000, nil, errbuf, 512) == 0,
    ffi.string(errbuf))
  return C.mw_ffi_scrape_batch(t), t
end

--- A receiver that records every sample it gets as { labels, ts, value, stale }, and
--- every histogram sample in r.histograms (moonwatch.batch.samples.histogram's tables).
function M.recorder()
  local batch = require("moonwatch.batch.samples")
  local r
  r = require("moonwatch.receiver").metrics("recorder", function(_, b)
    r.batches = r.batches + 1
    for _, m in ipairs(batch.metadata(b)) do
      r.metadata[m.name] = m
    end
    for _, labels, ts, value, stale in batch.samples(b) do
      r.samples[#r.samples + 1] = { labels = labels, ts = ts, value = value, stale = stale }
    end
    for _, h in ipairs(batch.histograms(b)) do
      r.histograms[#r.histograms + 1] = h
    end
  end)
  r.samples, r.histograms, r.batches, r.metadata = {}, {}, 0, {}
  return r
end

return M
