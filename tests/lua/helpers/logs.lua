--- helpers.logs: fixtures the logs specs share: journal files made by systemd's own tool,
--- and the suite's strict Loki push receiver (tests/e2e/fixtures/loki_receiver.lua).
local proc = require("helpers.proc")
local cjson = require("cjson")

local M = {}

M.JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
M.BOOT = "0123456789abcdef0123456789abcdef"

--- Now in microseconds since the epoch (a journal's realtime clock).
function M.now_usec()
  return math.floor(require("moonwatch.ffi").time_now() * 1e6)
end

local mono = 1000
--- Appends entries ({ fields = { MESSAGE = ..., ... }, usec = realtime (default now) }) to the
--- journal file `file` with systemd-journal-remote (journal export format in, a journal file out).
function M.journal(file, entries)
  local parts = {}
  for _, e in ipairs(entries) do
    mono = mono + 1
    parts[#parts + 1] = string.format("__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n",
      e.usec or M.now_usec(), mono, M.BOOT)
    for _, k in ipairs(proc.sorted_keys(e.fields)) do
      parts[#parts + 1] = k .. "=" .. e.fields[k] .. "\n"
    end
    parts[#parts + 1] = "\n"
  end
  local export = proc.write(file .. ".export", table.concat(parts))
  local out = proc.sh(string.format("%s --output=%s %s 2>&1; echo rc=$?", M.JOURNAL_REMOTE, proc.quote(file),
    proc.quote(export)))
  assert(out:find("rc=0", 1, true), out)
end

--- Appends s to the file at path (made when missing): a log file that grows.
function M.append(path, s)
  local f = assert(io.open(path, "ab"))
  f:write(s)
  f:close()
end

--- The lines a moonwatch.native.tail tailer t reads now (every file checked first), into
--- the logs batch b.
function M.tail_read(t, b)
  local got = {}
  t:check_all()
  repeat
    local more = t:read(b, 1000, 1000000)
    for _, e in require("moonwatch.batch.logs").entries(b) do
      got[#got + 1] = e.line
    end
  until not more
  return got
end

--- Starts the Loki receiver (on port, or a free one; its log under dir); returns the port.
function M.start_receiver(dir, port)
  port = port or proc.free_port()
  proc.spawn(string.format("%s lua %s/tests/e2e/fixtures/loki_receiver.lua %d", proc.quote(proc.bin), proc.source,
    port), dir .. "/receiver-" .. port .. ".log")
  proc.wait_http("http://127.0.0.1:" .. port .. "/ready")
  return port
end

--- What the receiver kept: what = "entries" or "requests".
function M.receiver_get(port, what)
  local status, body = proc.http("GET", "http://127.0.0.1:" .. port .. "/" .. what)
  assert(status == 200, "receiver answered " .. tostring(status))
  return cjson.decode(body)[what]
end

return M
