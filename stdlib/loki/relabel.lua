--- loki.relabel: rewrites the stream labels of the log entries it receives with relabeling
--- rules and forwards them, as Alloy's. The rules run in C once per distinct stream, with
--- a cache of results per label set (max_cache_size); an entry whose stream the rules drop
--- (or leave without labels) is dropped. Lua function rules run for cache misses only.
local logs = require("moonwatch.batch.logs")
local receiver = require("moonwatch.receiver")
local logrelabel = require("moonwatch.native.logrelabel")
local errors = require("moonwatch.errors")
local metrics = require("moonwatch.metrics")
local relabel = require("moonwatch.relabel")
local budget = require("moonwatch.budget")

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
  local segs, err = relabel.pipeline(args.rule)
  if not segs then
    error("rule: " .. err, 0)
  end
  self.args, self.segs = args, segs
  self.native = relabel.is_native(segs)
  local program = self.native and (segs[1] and segs[1].program or relabel.compile({})) or nil
  self.cache:reset(program, args.max_cache_size)
  self.m.size:set(0)
  self.ctx:export({ rules = args.rule })
end

-- The slow path: the Lua pipeline for the streams the last apply left out, within one time
-- budget (moonwatch.budget): past it, the streams left are dropped and the error logged.
function Instance:fill_misses(b)
  local cache = self.cache
  local n = cache:misses()
  local function put(s, out)
    local ok, err = cache:put(s, out)
    if not ok then
      self.ctx.log:error("relabel rule output rejected; the stream's entries are dropped", { err = err })
      cache:put(s, "")
    end
  end
  local stop, timeout = budget.call(function()
    for k = 0, n - 1 do
      local s = cache:miss(k)
      local ok, out = xpcall(relabel.apply, debug.traceback, self.segs, logs.stream_labels(b, s))
      if not ok then
        local msg = errors.report(out, self.ctx.id, nil, self.ctx.log)
        if budget.is_timeout(msg) then
          return k, msg
        end
        self.ctx.log:error("relabel rule failed; the stream's entries are dropped", { err = msg })
        out = nil
      end
      put(s, out and relabel.encode(out) or "")
    end
  end)
  if stop then
    self.ctx.log:error("relabel rule took too long; the streams left in this batch are dropped",
      { err = timeout, dropped = n - stop })
    for j = stop, n - 1 do
      put(cache:miss(j), "")
    end
  end
  return n
end

function Instance:append(b)
  local st, err = self.cache:apply(b)
  if not st then
    error(err, 0)
  end
  local hits, misses = tonumber(st.hits), tonumber(st.misses)
  if not self.native and self:fill_misses(b) > 0 then
    st, err = self.cache:apply(b)
    if not st then
      error(err, 0)
    end
  end
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
