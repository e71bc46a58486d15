--- loki.relabel: rewrites the stream labels of the log entries it receives with relabeling
--- rules and forwards them, as Alloy's. The rules run in C once per distinct stream, with
--- a cache of results per label set (max_cache_size); an entry whose stream the rules drop
--- (or leave without labels) is dropped. Lua function rules run for cache misses only.
local logs = require("moonwatch.batch.logs")
local receiver = require("moonwatch.receiver")
local logrelabel = require("moonwatch.native.logrelabel")
local metrics = require("moonwatch.metrics")
local relabel = require("moonwatch.relabel")
local relabel_component = require("moonwatch.relabel_component")

local Instance = {}
Instance.__index = Instance

local M = {
  name = "loki.relabel",
  doc = "Relabels the stream labels of log entries with relabeling rules and forwards them.",
  args = {
    forward_to = { type = "log_receivers", required = true, doc = "Where to send relabeled log entries." },
    rule = relabel.RULE,
    max_cache_size = { type = "int", default = 10000, min = 1, max = 2 ^ 32 - 1,
      doc = "Stream label sets whose results are cached; the cache is emptied when it has grown to this." },
  },
  exports = {
    receiver = { type = "log_receiver", doc = "Send log entries here (forward_to)." },
    rules = { type = "list", doc = "The rules, for other components (e.g. loki.source.journal's relabel_rules)." },
  },
}

local family
local function component_metrics()
  if not family then
    local reg = metrics.default
    local l = { "component_id" }
    family = {
      processed = reg:counter("loki_relabel_entries_processed", "Total number of log entries processed", l),
      written = reg:counter("loki_relabel_entries_written", "Total number of log entries forwarded", l),
      misses = reg:counter("loki_relabel_cache_misses", "Total number of cache misses", l),
      hits = reg:counter("loki_relabel_cache_hits", "Total number of cache hits", l),
      size = reg:gauge("loki_relabel_cache_size", "Total size of relabel cache", l),
    }
  end
  return family
end

M.validate = relabel.validate_rule_arg

function M.new(ctx, args)
  local f = component_metrics()
  local id = ctx.id
  local self = setmetatable({
    ctx = ctx,
    cache = assert(logrelabel.new(args.max_cache_size)),
    m = {
      processed = f.processed:with(id), written = f.written:with(id), misses = f.misses:with(id),
      hits = f.hits:with(id), size = f.size:with(id),
    },
    dropped = 0,
  }, Instance)
  self:update(args)
  self.fanout = receiver.fanout(ctx)
  ctx:export({ receiver = receiver.logs(id, function(_, b)
    self:append(b)
  end) })
  return self
end

function Instance:update(args)
  local segs = relabel_component.compile(args.rule)
  self.args, self.segs = args, segs
  self.native = relabel.is_native(segs)
  local program = self.native and (segs[1] and segs[1].program or relabel.compile({})) or nil
  self.cache:reset(program, args.max_cache_size)
  self.m.size:set(0)
  self.ctx:export({ rules = args.rule })
end

-- The slow path (Lua rules) runs for the streams the last apply left out, within one time
-- budget (moonwatch.budget): past it, the streams left are dropped and the error logged.
local MISSES = { one = "the stream's entries are dropped", left = "the streams left" }

function Instance:append(b)
  local st, hits, misses = relabel_component.apply(self, b, logs.stream_labels, MISSES)
  local m = self.m
  m.processed:add(tonumber(st.processed))
  m.written:add(tonumber(st.written))
  m.hits:add(hits)
  m.misses:add(misses)
  m.size:set(self.cache:len())
  self.dropped = self.dropped + tonumber(st.processed) - tonumber(st.written)
  local out = self.cache:batch()
  if logs.len(out) > 0 then
    self.fanout:send(self.args.forward_to, out)
  end
end

function Instance:debug_info()
  return { cache_size = self.cache:len(), native = self.native, entries_dropped = self.dropped }
end

return M
