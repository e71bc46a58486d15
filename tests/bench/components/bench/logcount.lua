-- bench.logcount: a logs receiver that only counts entries and bytes (no Lua per entry),
-- and writes "<entries> <bytes> <seconds since the first batch>" to `file` once it has
-- seen `expect` entries. For tests/bench/file_tail_bench.sh.
local logs = require("moonwatch.batch.logs")
local ffi_rt = require("moonwatch.ffi")

return {
  name = "bench.logcount",
  args = {
    expect = { type = "uint", required = true, doc = "Entries to wait for." },
    file = { type = "string", required = true, doc = "Where the result goes." },
  },
  exports = { receiver = { type = "log_receiver", doc = "Send log entries here." } },
  new = function(ctx, args)
    local self = { entries = 0, bytes = 0 }
    ctx:export({ receiver = require("moonwatch.receiver").logs(ctx.id, function(_, b)
      self.t0 = self.t0 or ffi_rt.monotonic()
      self.entries = self.entries + logs.len(b)
      self.bytes = self.bytes + logs.bytes(b)
      if self.entries >= args.expect and not self.done then
        self.done = true
        local f = assert(io.open(args.file, "w"))
        f:write(string.format("%d %d %.6f\n", self.entries, self.bytes, ffi_rt.monotonic() - self.t0))
        f:close()
      end
    end) })
    return self
  end,
}
