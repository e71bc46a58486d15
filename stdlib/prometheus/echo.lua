--- prometheus.echo: a metrics receiver that writes every sample it gets in
--- exposition format with its timestamp (text: milliseconds, OpenMetrics:
--- seconds), to stdout or appended to a file. For debugging and tests.
--- Staleness markers are written as NaN.
local batch = require("moonwatch.batch.samples")
local echo_output = require("moonwatch.echo_output")
local receiver = require("moonwatch.receiver")

local Instance = {}
Instance.__index = Instance

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

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, samples = 0 }, Instance)
  self.out = echo_output.new()
  self:update(args)
  ctx:export({ receiver = receiver.metrics(ctx.id, function(_, b)
    self:append(b)
  end) })
  return self
end

-- The new output opens first: when it cannot be opened, the previous output and arguments stay.
function Instance:update(args)
  self.out:open(args.file)
  self.args = args
end

function Instance:append(b)
  local n = batch.len(b)
  if n == 0 then
    return
  end
  self.out:write(batch.write(b, self.args.format))
  self.samples = self.samples + n
end

function Instance:stop()
  self.out:close()
end

function Instance:debug_info()
  return { samples_written = self.samples, file = self.out:name() }
end

return M
