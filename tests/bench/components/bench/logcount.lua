-- bench.logcount: a logs receiver that only counts the entries it gets.
local logs = require("moonwatch.batch.logs")

return {
  name = "bench.logcount",
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
