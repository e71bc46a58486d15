--- moonwatch.batch.logs: the log-entry batch, what logs receivers get
-- (moonwatch.receiver.logs). Declared ahead of the components that send logs: its
-- shape is the contract; a C batch of the same shape comes with them, and these
-- functions will then read it as batch.samples reads mw_batch_t.
-- A log entry is, as in Loki's push API:
--   labels    the stream's label set: { name = value } (a stream = one label set)
--   ts        timestamp in nanoseconds since the epoch (an integer; a Lua number holds
--             it to the microsecond, so a batch keeps seconds and nanoseconds apart)
--   line      the log line: bytes (a Lua string, any bytes, no trailing newline added)
--   metadata  structured metadata: { name = value } (not part of the stream's identity)
-- As every batch, it is valid only during the receiver's append(batch): copy what you keep.
--
--   local logs = require("moonwatch.batch.logs")
--   local b = logs.new()
--   logs.add(b, { job = "app" }, 1700000000, 123456789, "GET / 200", { trace_id = "abc" })
--   for i, e in logs.entries(b) do print(i, e.labels.job, logs.ts_ns(e), e.line) end
local M = {}

--- A new, empty log-entry batch.
---@return table
function M.new()
  return { kind = "logs", n = 0, entries = {} }
end

--- Appends an entry. ts is given as seconds and nanoseconds (0 to 999999999) since the epoch.
---@param b table
---@param labels table<string, string> the stream's label set (kept, not copied)
---@param sec integer
---@param nsec integer
---@param line string
---@param metadata table<string, string>|nil structured metadata
function M.add(b, labels, sec, nsec, line, metadata)
  if type(labels) ~= "table" then
    error("labels: expected a table of name = value, got " .. type(labels), 2)
  end
  if type(line) ~= "string" then
    error("line: expected a string, got " .. type(line), 2)
  end
  if nsec < 0 or nsec > 999999999 or nsec % 1 ~= 0 or sec % 1 ~= 0 then
    error("timestamp: expected whole seconds and nanoseconds in [0, 999999999]", 2)
  end
  b.n = b.n + 1
  b.entries[b.n] = { labels = labels, sec = sec, nsec = nsec, line = line, metadata = metadata or {} }
end

--- Number of entries.
---@param b table
---@return integer
function M.len(b)
  return b.n
end

--- The timestamp of entry e in nanoseconds, as a Lua number (exact to ~0.25 µs today).
---@param e table
---@return number
function M.ts_ns(e)
  return e.sec * 1e9 + e.nsec
end

--- Iterates the entries: for i, entry in M.entries(b) (i from 1; entry as M.add stored it).
---@param b table
function M.entries(b)
  local i = 0
  return function()
    i = i + 1
    if i > b.n then
      return nil
    end
    return i, b.entries[i]
  end
end

return M
