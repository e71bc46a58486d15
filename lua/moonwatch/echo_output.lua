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

return M
