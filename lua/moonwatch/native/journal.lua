--- moonwatch.native.journal: the systemd journal reader (runtime/journal/) from Lua, for
--- loki.source.journal. The reader fills a log-entry batch in C (labels, relabeling, lines);
--- Lua only sends the batch and keeps the cursor.
--
--   local r = assert(journal.open(path, { "_SYSTEMD_UNIT=a.service" }))
--   r:seek(cursor, max_age_seconds)
--   r:configure(program, json); assert(r:set_labels({ job = "j" }))
--   local n, at_end, st = r:read(batch, 4096, 4 * 2^20) -- then r:cursor()
--   if at_end then r:wait(1) end -- in a task: until the journal changes or 1 s passed
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local core = require("moonwatch.core")
local scheduler = require("moonwatch.scheduler")

local M = {}

local ERRLEN = 512
local errbuf = ffi.new("char[?]", ERRLEN)
local at_endp = ffi.new("int[1]")

local Reader = {}
Reader.__index = Reader

--- Opens the journal files in directory path (nil or "": the system journal) with matches
--- (a list of "FIELD=value"). The reader, or nil, err.
---@param path string|nil
---@param matches string[]
function M.open(path, matches)
  local buf = #matches > 0 and (table.concat(matches, "\0") .. "\0") or ""
  local h = C.mw_ffi_journal_open(path, buf, #buf, errbuf, ERRLEN)
  if h == nil then
    return nil, ffi.string(errbuf)
  end
  return setmetatable({
    h = ffi.gc(h, C.mw_ffi_journal_close),
    st = ffi.new("mw_journal_stats_t"),
  }, Reader)
end

--- Closes the reader now (it is also closed by the garbage collector).
function Reader:close()
  if self.h then
    C.mw_ffi_journal_close(ffi.gc(self.h, nil))
    self.h = nil
  end
end

--- Positions after the entry of cursor, or at now - max_age (no cursor, a bad one, or its
--- entry older than max_age). "cursor" or "max_age" (where it started), or nil, err.
---@param cursor string|nil
---@param max_age number seconds
function Reader:seek(cursor, max_age)
  local r = C.mw_ffi_journal_seek(self.h, cursor, max_age * 1e6, errbuf, ERRLEN)
  if r < 0 then
    return nil, ffi.string(errbuf)
  end
  return r == 0 and "cursor" or "max_age"
end

--- Sets the relabel program (nil: none; kept alive here) and the line format.
function Reader:configure(program, json)
  self.program = program
  C.mw_ffi_journal_configure(self.h, program, json and 1 or 0)
end

--- Sets the constant labels ({ name = value }). true, or nil, err.
function Reader:set_labels(labels)
  local names = {}
  for k in pairs(labels) do
    names[#names + 1] = k
  end
  table.sort(names)
  local parts = {}
  for i, k in ipairs(names) do
    parts[i] = k .. "\255" .. labels[k] .. "\255"
  end
  local s = table.concat(parts)
  if C.mw_ffi_journal_set_labels(self.h, s, #s, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return true
end

--- Reads entries into batch b (emptied first): entries read, at_end, stats (a struct owned
--- by the reader: entries, lines, no_message, empty_labels); or nil, err.
function Reader:read(b, max_entries, max_bytes)
  if not self.h then
    return nil, "the reader is closed"
  end
  local n = C.mw_ffi_journal_read(self.h, b, max_entries, max_bytes, self.st, at_endp, errbuf, ERRLEN)
  if n < 0 then
    return nil, ffi.string(errbuf)
  end
  return tonumber(n), at_endp[0] ~= 0, self.st
end

--- The cursor of the last entry read, or nil.
function Reader:cursor()
  local c = C.mw_ffi_journal_cursor(self.h)
  return c ~= nil and ffi.string(c) or nil
end

--- In a task: waits until the journal changes (its fd becomes readable, watched on the
--- event loop) or timeout seconds passed, then processes the change. Raises when the task
--- is cancelled.
---@param timeout number
function Reader:wait(timeout)
  local task = scheduler.current()
  local function wake()
    scheduler.wake(task)
  end
  local io = core.io(C.mw_ffi_journal_fd(self.h), "r", wake)
  local timer = core.timer(timeout, 0, wake, "journal")
  local ok, err = pcall(scheduler.suspend)
  io:close()
  timer:close()
  if not ok then
    error(err, 0)
  end
  if self.h then
    C.mw_ffi_journal_process(self.h)
  end
end

return M
