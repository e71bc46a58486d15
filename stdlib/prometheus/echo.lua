--- prometheus.echo: a metrics receiver that writes every sample it gets in
--- exposition format with its timestamp (text: milliseconds, OpenMetrics:
--- seconds), to stdout or appended to a file. For debugging and tests.
--- Staleness markers are written as NaN. Native histogram samples follow, one line each,
--- as Prometheus's Histogram.String() writes them: name{labels} {count:14, sum:42.5,
--- [-2,-1):2, [-0.001,0.001]:1, (0.5,1]:3} ts (a stale marker: {count:0, sum:NaN}).
local batch = require("moonwatch.batch.samples")
local echo_output = require("moonwatch.echo_output")
local receiver = require("moonwatch.receiver")

local Instance, new = echo_output.component({ samples = 0 }, receiver.metrics)

local M = {
  name = "prometheus.echo",
  doc = "Writes received samples in exposition format (stdout, or appended to a file).",
  args = {
    format = { type = "string", default = "text", enum = { "text", "openmetrics" },
      doc = "Exposition format of the lines." },
    file = { type = "string", doc = "Append to this file instead of writing to stdout." },
  },
  exports = {
    receiver = { type = "receiver", doc = "Send samples here (forward_to)." },
  },
}

M.new = new

function Instance:append(b)
  local n = batch.len(b) + batch.histogram_count(b)
  if n == 0 then
    return
  end
  self.out:write(batch.write(b, self.args.format))
  self.samples = self.samples + n
end

function Instance:debug_info()
  return { samples_written = self.samples, file = self.out:name() }
end

return M
