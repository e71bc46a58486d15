-- bench.logsource: sends one prepared batch of `batch` JSON log lines (~200 bytes each, over
-- `streams` streams) `iterations` times to forward_to as fast as the receivers take them,
-- then writes "entries=N seconds=S entries_per_second=R" to `report` (tests/bench/loki_process_bench.sh).
local logs = require("moonwatch.batch.logs")
local receiver = require("moonwatch.receiver")
local ffi_rt = require("moonwatch.ffi")

return {
  name = "bench.logsource",
  args = {
    batch = { type = "int", default = 1000, doc = "Entries per batch." },
    streams = { type = "int", default = 10, doc = "Streams of a batch." },
    iterations = { type = "int", default = 200, doc = "Batches sent." },
    report = { type = "string", required = true, doc = "File the result is written to." },
    forward_to = { type = "log_receivers", required = true, doc = "Log receivers." },
  },
  exports = {},
  new = function(ctx, args)
    local fan = receiver.fanout(ctx)
    local b = logs.new()
    local levels = { "info", "warn", "error", "debug" }
    for i = 1, args.batch do
      local line = string.format('{"level":"%s","ts":"2024-05-01T12:%02d:%02d.%06dZ","caller":"server/http.go:%d",'
        .. '"msg":"request served","method":"GET","path":"/api/v1/items/%d","status":200,"duration_ms":%d.%03d}',
        levels[i % 4 + 1], i % 60, (i * 7) % 60, i, i % 500, i, i % 100, i % 1000)
      logs.add(b, { job = "bench", instance = "host-" .. (i % args.streams) }, 1714564800 + i, 0, line)
    end
    ctx:spawn(function()
      ctx:sleep(0.2)
      local t0, c0 = ffi_rt.monotonic(), os.clock()
      for _ = 1, args.iterations do
        fan:send(args.forward_to, b)
      end
      local dt, cpu = ffi_rt.monotonic() - t0, os.clock() - c0
      local n = args.batch * args.iterations
      local f = assert(io.open(args.report, "w"))
      f:write(string.format("entries=%d bytes/line=%d wall=%.2fs cpu=%.2fs entries/s(cpu)=%.0f\n", n,
        math.floor(logs.bytes(b) / logs.len(b)), dt, cpu, n / cpu))
      f:close()
    end, "bench")
    return {}
  end,
}
