--- mycorp.sample_counter: a metrics component written with the component API
-- (moonwatch.component): it counts the samples and batches it receives, logs the
-- counts every report_interval, and forwards every batch untouched (with its
-- metric metadata) to forward_to.
local receiver = require("moonwatch.receiver")
local samples = require("moonwatch.batch.samples")

return {
  name = "mycorp.sample_counter",
  doc = "Counts the samples it receives and forwards them.",
  args = {
    forward_to = { type = "receivers", required = true, doc = "Where the samples go on." },
    report_interval = { type = "duration", default = "1m", doc = "How often the counts are logged." },
  },
  exports = { receiver = { type = "receiver", doc = "Send metrics here (forward_to)." } },

  new = function(ctx, args)
    local self = { args = args, samples = 0, batches = 0 }
    local fanout = receiver.fanout(ctx) -- one failing receiver does not stop the others

    ctx:export({ receiver = receiver.metrics(ctx.id, function(_, batch)
      self.samples = self.samples + samples.len(batch)
      self.batches = self.batches + 1
      fanout:send(self.args.forward_to, batch) -- the batch is valid during this call only
    end) })

    local function report()
      ctx.log:info("samples received", { samples = self.samples, batches = self.batches })
    end
    local timer = ctx:timer(args.report_interval, args.report_interval, report, "report")
    ctx:on_stop(report) -- the timer is closed for us; the last counts are logged

    function self.update(_, new_args)
      if new_args.report_interval ~= self.args.report_interval then
        timer:close()
        timer = ctx:timer(new_args.report_interval, new_args.report_interval, report, "report")
      end
      self.args = new_args
    end

    function self.debug_info()
      return { samples = self.samples, batches = self.batches }
    end

    return self
  end,
}
