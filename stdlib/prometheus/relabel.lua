--- prometheus.relabel: relabels the samples it receives and forwards them.
-- The rules run in C over whole batches, with a cache of results per input
-- series: a cache hit costs one lookup, and only new series run the rules.
-- Lua function rules run for cache misses only (the slow path).
local ffi_rt = require("moonwatch.ffi")
local batch = require("moonwatch.batch.samples")
local duration = require("moonwatch.duration")
local receiver = require("moonwatch.receiver")
local relabel_cache = require("moonwatch.native.relabel_cache")
local metrics = require("moonwatch.metrics")
local relabel = require("moonwatch.relabel")
local relabel_component = require("moonwatch.relabel_component")

local Instance = {}
Instance.__index = Instance

local M = {
  name = "prometheus.relabel",
  doc = "Relabels metrics with Prometheus relabeling rules and forwards them.",
  args = {
    forward_to = { type = "receivers", required = true, doc = "Where to send relabeled metrics." },
    rule = relabel.RULE,
    max_cache_size = { type = "int", default = 100000, min = 0, max = 2 ^ 32 - 1,
      doc = "Input series whose results are cached; the cache is emptied when it would grow past this. "
        .. "0 with cache_ttl: no size bound (Alloy's TTL mode)." },
    cache_ttl = { type = "duration", default = "0s", min = 0,
      doc = "Alloy's TTL mode (with max_cache_size = 0; at least 1m): the cache has no size bound and "
        .. "is emptied every cache_ttl, so series that stopped coming are forgotten within it (Alloy "
        .. "evicts each entry idle for cache_ttl; the results are the same)." },
  },
  exports = {
    receiver = { type = "receiver", doc = "Send metrics here (forward_to)." },
    rules = { type = "list", doc = "The rules, for other components." },
  },
}

local function component_metrics()
  local reg = metrics.default
  local l = { "component_id" }
  return {
    hits = reg:counter("prometheus_relabel_cache_hits", "Total number of cache hits.", l),
    misses = reg:counter("prometheus_relabel_cache_misses", "Total number of cache misses.", l),
    size = reg:gauge("prometheus_relabel_cache_size", "Total size of relabel cache.", l),
    processed = reg:counter("prometheus_relabel_metrics_processed", "Total number of metrics processed.", l),
    written = reg:counter("prometheus_relabel_metrics_written", "Total number of metrics written.", l),
    forwarded = reg:counter("prometheus_forwarded_samples_total",
      "Total number of samples sent to downstream components.", l),
    ttl_evictions = reg:counter("prometheus_relabel_cache_ttl_evictions",
      "Number of relabel cache entries removed by the periodic TTL scan. Always 0 when cache_ttl is unset.", l),
    fanout = reg:histogram("prometheus_fanout_latency", "Write latency for sending to direct and indirect components.", l),
  }
end

-- Alloy's checks of the two cache modes, with its messages.
function M.validate(args)
  local size, ttl = args.max_cache_size, args.cache_ttl
  if size > 0 and ttl > 0 then
    return "max_cache_size and cache_ttl are mutually exclusive: set max_cache_size = 0 to use cache_ttl, "
      .. "or unset cache_ttl to keep the bounded LRU cache"
  elseif size == 0 and ttl == 0 then
    return "one of max_cache_size or cache_ttl must be set"
  elseif ttl > 0 and ttl < 60 then
    return "cache_ttl must be at least 1m when set; got " .. duration.format(ttl)
  end
  return relabel.validate_rule_arg(args)
end

-- The C cache's bound: max_cache_size, or none in TTL mode.
local function cache_bound(args)
  return args.max_cache_size > 0 and args.max_cache_size or 2 ^ 32 - 1
end

function M.new(ctx, args)
  local cache = assert(relabel_cache.new(cache_bound(args)))
  local m = component_metrics()
  local id = ctx.id
  local self = setmetatable({
    ctx = ctx, cache = cache,
    m = {
      hits = m.hits:with(id), misses = m.misses:with(id), size = m.size:with(id),
      processed = m.processed:with(id), written = m.written:with(id),
      forwarded = m.forwarded:with(id), fanout = m.fanout:with(id), ttl_evictions = m.ttl_evictions:with(id),
    },
  }, Instance)
  self:update(args)
  self.fanout = receiver.fanout(ctx)
  ctx:export({ receiver = receiver.metrics(id, function(_, b)
    self:append(b)
  end) })
  return self
end

function Instance:update(args)
  local segs = relabel_component.compile(args.rule)
  self.args, self.segs = args, segs
  if self.max ~= cache_bound(args) then
    self.max = cache_bound(args)
    self.cache = assert(relabel_cache.new(self.max))
  end
  self.ttl = args.cache_ttl > 0 and args.cache_ttl or nil
  self.cleared = ffi_rt.monotonic()
  self.native = relabel.is_native(segs)
  assert(self.cache:reset(self.native and segs[1] and segs[1].program or nil))
  if self.native and not segs[1] then
    -- no rules: an empty program passes everything through
    self.empty = relabel.compile({})
    assert(self.cache:reset(self.empty))
  end
  self.ctx:export({ rules = args.rule })
end

-- The slow path (Lua rules) runs for the misses of the last apply, all of them within one
-- time budget (moonwatch.budget): when the Lua rules take longer, the misses left are dropped
-- and the error logged once.
local MISSES = { one = "the series is dropped", left = "the series left" }

function Instance:append(b)
  if self.ttl and ffi_rt.monotonic() - self.cleared >= self.ttl then
    -- TTL mode: forget every result once per cache_ttl (between batches: no output ref in use)
    local forgotten = self.cache:len()
    assert(self.cache:reset(self.cache.program))
    self.cleared = ffi_rt.monotonic()
    self.m.ttl_evictions:add(forgotten)
  end
  local st, hits, misses = relabel_component.apply(self, b, batch.labels, MISSES)
  local m = self.m
  m.hits:add(tonumber(hits))
  m.misses:add(tonumber(misses))
  m.processed:add(tonumber(st.processed))
  m.written:add(tonumber(st.written))
  m.size:set(self.cache:len())
  local out = self.cache:batch()
  local n = batch.len(out) + batch.histogram_count(out) -- native histograms go with their series
  if n == 0 then
    if batch.has_metadata(out) then
      self.fanout:send(self.args.forward_to, out) -- the rules drop series, not families: the metadata goes on
    end
    return
  end
  local t0 = ffi_rt.monotonic()
  self.fanout:send(self.args.forward_to, out)
  m.forwarded:add(n)
  m.fanout:observe(ffi_rt.monotonic() - t0)
end

function Instance:debug_info()
  return { cache_size = self.cache:len(), output_series = self.cache:outputs(), native = self.native }
end

return M
