-- bench.logdiscard: a logs receiver that only counts the entries it gets (loki_process_bench.sh).
local logs = require("moonwatch.batch.logs")

return {
  name = "bench.logdiscard",
  args = {},
  exports = { receiver = { type = "log_receiver", doc = "Send log entries here." } },
  new = function(ctx)
    local self = { entries = 0 }
    ctx:export({ receiver = require("moonwatch.receiver").logs(ctx.id, function(_, b)
      self.entries = self.entries + logs.len(b)
    end) })
    return self
  end,
}
