--- prometheus.echo: a metrics receiver that writes every sample it gets in
--- exposition format with its timestamp (text: milliseconds, OpenMetrics:
--- seconds), to stdout or appended to a file. For debugging and tests.
--- Staleness markers are written as NaN.
local batch = require("moonwatch.batch")
local fs = require("moonwatch.fs")

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
  self:update(args)
  ctx:export({ receiver = { id = ctx.id, append = function(_, b)
    self:append(b)
  end } })
  return self
end

-- Opens the new output first: when it cannot be opened, the previous output
-- and arguments stay.
function Instance:update(args)
  local out = io.stdout
  if args.file then
    local dir = args.file:match("^(.*)/[^/]*$")
    if dir and dir ~= "" then
      fs.mkdir_p(dir) -- when it fails, opening the file says why
    end
    local f, err = io.open(args.file, "a")
    if not f then
      error("opening " .. err, 0)
    end
    f:setvbuf("full")
    out = f
  end
  if self.out and self.out ~= io.stdout then
    self.out:close()
  end
  self.args, self.out = args, out
end

function Instance:append(b)
  local n = batch.len(b)
  if n == 0 then
    return
  end
  self.out:write(batch.write(b, self.args.format))
  self.out:flush()
  self.samples = self.samples + n
end

function Instance:stop()
  if self.out and self.out ~= io.stdout then
    self.out:close()
    self.out = nil
  end
end

function Instance:debug_info()
  return { samples_written = self.samples, file = self.args.file or "(stdout)" }
end

return M
