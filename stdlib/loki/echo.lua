--- loki.echo: a logs receiver that writes every entry it gets, one logfmt line each, to
--- stdout (as Alloy's) or appended to a file (moonwatch's addition, for debugging and tests):
---   ts=2023-11-14T22:13:20.123456789Z labels="{job=\"app\"}" entry="GET / 200"
--- with structured_metadata="{trace_id=\"abc\"}" when the entry has any.
local logs = require("moonwatch.batch.logs")
local echo_output = require("moonwatch.echo_output")
local receiver = require("moonwatch.receiver")

local Instance = {}
Instance.__index = Instance

local M = {
  name = "loki.echo",
  doc = "Writes received log entries as logfmt lines (stdout, or appended to a file).",
  args = {
    file = { type = "string", doc = "Append to this file instead of writing to stdout (moonwatch only)." },
  },
  exports = {
    receiver = { type = "log_receiver", doc = "Send log entries here (forward_to)." },
  },
}

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, entries = 0 }, Instance)
  self.out = echo_output.new()
  self:update(args)
  ctx:export({ receiver = receiver.logs(ctx.id, function(_, b)
    self:append(b)
  end) })
  return self
end

-- The new output opens first: when it cannot be opened, the previous output and arguments stay.
function Instance:update(args)
  self.out:open(args.file)
  self.args = args
end

-- A logfmt value: always quoted, with \ " and control characters escaped (Go's %q style).
local function q(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == "\n" then
      return "\\n"
    elseif c == "\t" then
      return "\\t"
    elseif c == '"' or c == "\\" then
      return "\\" .. c
    end
    return string.format("\\x%02x", c:byte())
  end) .. '"'
end

-- A label set as Prometheus prints one: {a="1", b="2"}, names sorted.
local function set(t)
  local names = {}
  for k in pairs(t) do
    names[#names + 1] = k
  end
  table.sort(names)
  for i, k in ipairs(names) do
    names[i] = k .. "=" .. string.format("%q", t[k]):gsub("\\\n", "\\n")
  end
  return "{" .. table.concat(names, ", ") .. "}"
end

function Instance:append(b)
  local n = logs.len(b)
  if n == 0 then
    return
  end
  local parts, shown = {}, {}
  for i, e in logs.entries(b) do
    local ls = shown[e.stream]
    if not ls then
      ls = q(set(e.labels))
      shown[e.stream] = ls
    end
    local line = string.format("ts=%s.%09dZ labels=%s entry=%s", os.date("!%Y-%m-%dT%H:%M:%S", e.sec), e.nsec,
      ls, q(e.line))
    if next(e.metadata) then
      line = line .. " structured_metadata=" .. q(set(e.metadata))
    end
    parts[i + 1] = line
  end
  parts[#parts + 1] = ""
  self.out:write(table.concat(parts, "\n"))
  self.entries = self.entries + n
end

function Instance:stop()
  self.out:close()
end

function Instance:debug_info()
  return { entries_written = self.entries, file = self.out:name() }
end

return M
