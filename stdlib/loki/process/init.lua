--- loki.process: runs the log entries it receives through processing stages and forwards
-- what is left. The stages are the component's positional entries, in order, made with the
-- pipeline's `stage` helper, as Alloy's stage blocks:
--
--   loki.process "app" {
--     forward_to = { loki.echo.out.receiver },
--     stage.json { expressions = { level = "", msg = "message" } },
--     stage.labels { values = { level = "" } },
--     stage.match { selector = '{job="app"} |= "error"', stage.drop {} },
--   }
--
-- Each entry carries an extracted map (starting with its labels, as Alloy's) through the
-- stages. A batch goes through the stages one after another over all its entries (see
-- stages.lua), and the survivors become one new batch for forward_to. Stages that hold
-- entries back (multiline, limit without drop) send them on from a timer, through the
-- stages after them, in a batch of their own; on stop they are flushed.
local ffi_rt = require("moonwatch.ffi")
local logs = require("moonwatch.batch.logs")
local receiver = require("moonwatch.receiver")
local metrics = require("moonwatch.metrics")
local stages = require("loki.process.stages")

local Instance = {}
Instance.__index = Instance

local M = {
  name = "loki.process",
  doc = "Processes log entries with stages (json, logfmt, regex, labels, timestamp, match, drop, ...) and forwards them.",
  positional = "stage",
  args = {
    forward_to = { type = "log_receivers", required = true, doc = "Where to forward the processed entries." },
    stage = stages.STAGE_LIST,
  },
  exports = {
    receiver = { type = "log_receiver", doc = "Send log entries here (forward_to)." },
  },
}

local TICK = 0.1 -- seconds between checks of held entries (multiline, limit)
-- A batch refuses a line or a metadata set longer than this (runtime/model/logbatch.h,
-- MW_LOGBATCH_MAX_LINE): such an entry (a huge multiline block, a template's output) is
-- dropped and counted (reason "line_too_long") instead of failing the whole batch.
local MAX_LINE = 64 * 1024 * 1024

local family, by_label_family
local function dropped_family()
  family = family or metrics.default:counter("loki_process_dropped_lines_total",
    "A count of all log lines dropped as a result of a pipeline stage", { "component_id", "reason" })
  by_label_family = by_label_family or metrics.default:counter("loki_process_dropped_lines_by_label_total",
    "A count of all log lines dropped as a result of a pipeline stage",
    { "component_id", "label_name", "label_value" })
  return family, by_label_family
end

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, received = 0, forwarded = 0, dropped = {}, fanout = receiver.fanout(ctx) },
    Instance)
  self:update(args)
  ctx:export({ receiver = receiver.logs(ctx.id, function(_, b)
    self:append(b)
  end) })
  ctx:on_stop(function()
    self:flush_held()
    require("loki.process.custom_metrics").reset(ctx.id)
  end)
  return self
end

-- Compiles a list of validated stages ({ tag, args }) into run(list) -> list. after(list)
-- takes entries that a stage held back and sends on later, once they went through the
-- stages after it (nil: the pipeline's own output).
function Instance:compile(list, after)
  local fns = {}
  local function run_from(k, l)
    for j = k, #fns do
      if #l == 0 then
        break
      end
      l = fns[j](l)
    end
    return l
  end
  for i, st in ipairs(list) do
    local def = stages.STAGES[st.tag]
    local env = setmetatable({
      resume = function(l)
        l = run_from(i + 1, l)
        if #l > 0 then
          after(l)
        end
      end,
      compile = function(sub)
        return self:compile(sub, function(l)
          -- entries held inside a nested pipeline go on after this stage
          l = run_from(i + 1, l)
          if #l > 0 then
            after(l)
          end
        end)
      end,
    }, { __index = self.env })
    fns[i] = def.new(st.args, env)
  end
  return function(l)
    return run_from(1, l)
  end
end

function Instance:update(args)
  local fam, by_fam = dropped_family()
  local id = self.ctx.id
  local ticks = {}
  self.env = {
    id = id,
    log = self.ctx.log,
    now = ffi_rt.time_now,
    monotonic = ffi_rt.monotonic,
    drop = function(e, reason)
      e.dropped = true
      local c = self.dropped[reason]
      if not c then
        c = { n = 0, child = fam:with(id, reason) }
        self.dropped[reason] = c
      end
      c.n = c.n + 1
      c.child:inc()
    end,
    drop_by_label = function(name, value)
      by_fam:with(id, name, value or ""):inc()
    end,
    -- a counter of this component (Alloy's stage metrics, with component_id); with label
    -- names, a function of their values that gives the counter
    counter = function(name, help, labels)
      if labels then
        local counters = metrics.default:counter(name, help, { "component_id", unpack(labels) })
        return function(...)
          return counters:with(id, ...)
        end
      end
      return metrics.default:counter(name, help, { "component_id" }):with(id)
    end,
    tick = function(fn)
      ticks[#ticks + 1] = fn
    end,
  }
  self:flush_held()
  self.args = args
  self.pipeline = self:compile(args.stage, function(l)
    self:forward(l)
  end)
  self.ticks = ticks
  if self.timer then
    self.timer:close()
    self.timer = nil
  end
  if #ticks > 0 then
    self.timer = self.ctx:timer(TICK, TICK, function()
      for _, fn in ipairs(ticks) do
        fn(false)
      end
    end, "held entries")
  end
end

-- Sends on every entry a stage holds (on stop and before a new configuration).
function Instance:flush_held()
  for _, fn in ipairs(self.ticks or {}) do
    fn(true)
  end
end

-- The entries of batch b as the stages take them.
local function entries_of(b)
  local list, cache = {}, {}
  local new_extracted, entry_of = stages.new_extracted, logs.entry_of
  for i = 0, logs.len(b) - 1 do
    local e = entry_of(b, i, cache)
    local l = e.labels
    list[i + 1] = { labels = l, line = e.line, sec = e.sec, nsec = e.nsec, metadata = e.metadata,
      extracted = new_extracted(l) }
  end
  return list
end

-- Builds the output batch of the entries left and forwards it.
function Instance:forward(list)
  local out = logs.new()
  local streams = {}
  local n = 0
  local too_long = 0
  for i = 1, #list do
    local e = list[i]
    local s = streams[e.labels]
    if not s then
      -- the stages keep label names valid (checked names; stage.lua's result is checked)
      s = logs.stream(out, e.labels)
      streams[e.labels] = s
    end
    local md = next(e.metadata) and e.metadata or nil
    if #e.line > MAX_LINE then
      self.env.drop(e, "line_too_long")
      too_long = too_long + 1
    else
      logs.add(out, s, e.sec, e.nsec, e.line, md)
      n = n + 1
    end
  end
  if too_long > 0 then
    self.ctx.log:error("entries dropped: their line is longer than a batch takes", { entries = too_long,
      max_bytes = MAX_LINE })
  end
  if n > 0 then
    self.forwarded = self.forwarded + n
    self.fanout:send(self.args.forward_to, out)
  end
end

function Instance:append(b)
  local list = entries_of(b)
  self.received = self.received + #list
  if #list == 0 then
    return
  end
  list = self.pipeline(list)
  if #list > 0 then
    self:forward(list)
  end
end

function Instance:debug_info()
  local dropped = {}
  for reason, c in pairs(self.dropped) do
    dropped[reason] = c.n
  end
  return { entries_received = self.received, entries_forwarded = self.forwarded, entries_dropped = dropped }
end

return M
