--- local.file: exports the contents of a file, as Alloy's local.file; people use it
--- for secrets (`password = local.file.pw.content` with is_secret = true) and small
--- documents read by other components. `local` is a Lua keyword: Lua pipelines write
--- `local_.file "x" { ... }` and `local_.file.x.content`; the component id stays
--- local.file.x. The file is read when the component starts and re-read every second
--- (detector "fsnotify": moonwatch has no inotify watcher, a one-second check stands in
--- for it) or every poll_frequency (detector "poll"); readers are re-evaluated only when
--- the contents change. A file that cannot be read, or is larger than MAX_SIZE, makes the
--- component unhealthy and keeps the last contents exported.
local schema = require("moonwatch.schema")

local Instance = {}
Instance.__index = Instance

local M = {
  name = "local.file",
  doc = "Exports the contents of a file on the local filesystem (re-read when it changes).",
  args = {
    filename = { type = "string", required = true, doc = "Path of the file to read." },
    detector = { type = "string", default = "fsnotify", enum = { "fsnotify", "poll" },
      doc = "How changes are noticed: fsnotify (checked every second) or poll (every poll_frequency)." },
    poll_frequency = { type = "duration", default = "1m", positive = true,
      doc = "How often the file is re-read with detector = \"poll\"." },
    is_secret = { type = "bool", default = false,
      doc = "Whether the contents are a secret (exported as a secret: never shown in the API, logs or messages)." },
  },
  exports = {
    content = { type = "any", doc = "The contents of the file (a secret when is_secret is true)." },
  },
}

--- The largest file exported, in bytes.
M.MAX_SIZE = 4 * 1024 * 1024

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, err
  end
  local data = f:read(M.MAX_SIZE + 1)
  f:close()
  if data and #data > M.MAX_SIZE then
    return nil, string.format("%s: larger than %d bytes", path, M.MAX_SIZE)
  end
  return data or ""
end

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, args = args, reads = 0, failures = 0 }, Instance)
  self:sync()
  self:arm() -- no run loop: a timer re-reads the file (a run that returned would show as exited)
  return self
end

function Instance:period()
  return self.args.detector == "poll" and self.args.poll_frequency or 1
end

function Instance:update(args)
  local old = self:period()
  self.args = args
  self.last = nil -- is_secret may have changed: export again
  self:sync()
  if self.timer and old ~= self:period() then
    self.timer:close()
    self.timer = nil
  end
  self:arm()
end

function Instance:arm()
  if not self.timer then
    local p = self:period()
    self.timer = self.ctx:timer(p, p, function()
      self:sync()
    end, self.ctx.id .. " read")
  end
end

function Instance:sync()
  local data, err = read(self.args.filename)
  self.reads = self.reads + 1
  if not data then
    self.failures = self.failures + 1
    self.ctx:set_health("unhealthy", "cannot read the file: " .. tostring(err))
    return
  end
  self.ctx:set_health("healthy", "")
  if data == self.last then
    return
  end
  self.last = data
  self.ctx:export({ content = self.args.is_secret and schema.secret(data) or data })
end

function Instance:debug_info()
  return { reads = self.reads, read_failures = self.failures }
end

return M
