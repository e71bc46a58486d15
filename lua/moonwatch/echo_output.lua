--- moonwatch.echo_output: where the echo components (prometheus.echo, loki.echo) write:
--- stdout, or a file they append to (its directory made first). One per component
--- instance; open() a new output on every update: when it cannot be opened, the error is
--- raised and the previous output stays.
local fs = require("moonwatch.fs")

local Output = {}
Output.__index = Output

local M = {}

function M.new()
  return setmetatable({ f = nil, file = nil }, Output)
end

--- Switches to file (nil: stdout). Raises "opening <reason>" when the file cannot be opened.
---@param file string|nil
function Output:open(file)
  local f = io.stdout
  if file then
    local dir = file:match("^(.*)/[^/]*$")
    if dir and dir ~= "" then
      fs.mkdir_p(dir) -- when it fails, opening the file says why
    end
    local err
    f, err = io.open(file, "a")
    if not f then
      error("opening " .. err, 0)
    end
    f:setvbuf("full")
  end
  self:close()
  self.f, self.file = f, file
end

--- Writes s and flushes.
function Output:write(s)
  self.f:write(s)
  self.f:flush()
end

--- Closes the file (stdout stays open).
function Output:close()
  if self.f and self.f ~= io.stdout then
    self.f:close()
  end
  self.f = nil
end

--- What debug info shows: the file or "(stdout)".
function Output:name()
  return self.file or "(stdout)"
end

--- What the echo components share: an Instance class with update (the new output opens first:
--- when it cannot be opened, the previous output and arguments stay) and stop, and a new that
--- makes the instance (fields plus ctx and its output), applies args and exports as receiver
--- the receiver that make_receiver(ctx.id, append) makes (moonwatch.receiver.metrics or .logs).
---@return table Instance, fun(ctx, args): table new
function M.component(fields, make_receiver)
  local Instance = {}
  Instance.__index = Instance
  function Instance:update(args)
    self.out:open(args.file)
    self.args = args
  end
  function Instance:stop()
    self.out:close()
  end
  local function new(ctx, args)
    local self = setmetatable({ ctx = ctx, out = M.new() }, Instance)
    for k, v in pairs(fields) do
      self[k] = v
    end
    self:update(args)
    ctx:export({ receiver = make_receiver(ctx.id, function(_, b)
      self:append(b)
    end) })
    return self
  end
  return Instance, new
end

return M
