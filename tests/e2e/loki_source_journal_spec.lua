-- End-to-end: loki.source.journal through `moonwatch run` on real journal files, made from
-- journal export format by systemd's own tool (systemd-journal-remote): fields as
-- __journal_* labels for relabel_rules, constant labels, matches, max_age, format_as_json,
-- entries appended while it runs (to the file, and as a new file), and a restart resuming
-- after the last entry sent (TERM: none again; kill -9: none lost).
local proc = require("helpers.proc")
local cjson = require("cjson")

local logs = require("helpers.logs")
local tmp = proc.tmpdir()
local BOOT = logs.BOOT
local now_usec = logs.now_usec
local journal = logs.journal
local slurp = proc.read_file

local function count_lines(s)
  local _, n = s:gsub("\n", "")
  return n
end

-- Waits until file has at least n lines; its text.
local function wait_lines(path, n, timeout)
  local deadline = os.time() + (timeout or 10)
  local s
  repeat
    s = slurp(path)
    if count_lines(s) >= n then
      return s
    end
    os.execute("sleep 0.05")
  until os.time() > deadline
  return s
end

local function entries_of(s)
  local out = {}
  for line in s:gmatch("[^\n]+") do
    local ts, labels, entry = line:match('^ts=(%S+) labels="(.-)" entry="(.*)"$')
    out[#out + 1] = { ts = ts, labels = labels and labels:gsub('\\"', '"'), line = entry }
  end
  return out
end

local function pipeline(name, dir, out, extra)
  return proc.write(tmp .. "/" .. name .. ".lua", string.format([[
loki.relabel "rules" {
  forward_to = {},
  rule = {
    { source_labels = { "__journal__systemd_unit" }, target_label = "unit" },
    { source_labels = { "__journal_priority_keyword" }, target_label = "level" },
    { source_labels = { "__journal_syslog_identifier", "__journal_priority" }, target_label = "id_prio" },
  },
}
loki.source.journal "j" {
  path = %q,
  relabel_rules = loki.relabel.rules.rules,
  labels = { job = "journal" },
  forward_to = { loki.echo.e.receiver },
  %s
}
loki.echo "e" { file = %q }
]], dir, extra or "", out))
end

describe("loki.source.journal", function()
  it("turns journal entries into log entries: labels, relabel_rules, timestamps, matches", function()
    local dir = tmp .. "/basic"
    os.execute("mkdir -p " .. dir)
    local t0 = now_usec() - 10 * 1e6
    journal(dir .. "/x.journal", {
      { usec = now_usec() - 2 * 3600 * 1e6, fields = { MESSAGE = "too old", PRIORITY = "6" } }, -- max_age
      { usec = t0 + 123456, fields = { MESSAGE = "first", PRIORITY = "3", _SYSTEMD_UNIT = "app.service",
        SYSLOG_IDENTIFIER = "app" } },
      { usec = t0 + 1000001, fields = { MESSAGE = "second line", PRIORITY = "6", _SYSTEMD_UNIT = "db.service" } },
      { usec = t0 + 2000002, fields = { MESSAGE = "no unit", PRIORITY = "7" } },
      { usec = t0 + 3000003, fields = { CODE_LINE = "12" } }, -- no MESSAGE: left out
    })
    local out = dir .. "/out.log"
    local h = proc.start_run(pipeline("basic", dir, out, 'max_age = "1h",'),
      { "--storage.path=" .. tmp .. "/basic-data" })
    local got = entries_of(wait_lines(out, 3))
    os.execute("sleep 0.3")
    local _, body = proc.http("GET", h.base .. "/metrics")
    h.kill()
    assert.equals(0, h.wait(10))
    assert.equals(3, count_lines(slurp(out)))
    local function ts(usec)
      local s = math.floor(usec / 1e6)
      return os.date("!%Y-%m-%dT%H:%M:%S", s) .. string.format(".%06d000Z", usec % 1e6)
    end
    assert.same({
      { ts = ts(t0 + 123456), line = "first",
        labels = '{id_prio="app;3", job="journal", level="error", unit="app.service"}' },
      { ts = ts(t0 + 1000001), line = "second line",
        labels = '{id_prio=";6", job="journal", level="info", unit="db.service"}' },
      { ts = ts(t0 + 2000002), line = "no unit", labels = '{id_prio=";7", job="journal", level="debug"}' },
    }, got)
    assert.matches('loki_source_journal_target_lines_total{component_id="loki.source.journal.j"} 3', body, 1, true)
    assert.matches('loki_source_journal_target_parsing_errors_total{component_id="loki.source.journal.j",'
      .. 'error="no_message"} 1', body, 1, true)
    -- matches: fields ANDed, values of one field ORed
    local out2 = dir .. "/out2.log"
    local h2 = proc.start_run(pipeline("matches", dir, out2,
      'matches = "PRIORITY=3 PRIORITY=7 _SYSTEMD_UNIT=app.service",'), { "--storage.path=" .. tmp .. "/m-data" })
    wait_lines(out2, 1)
    os.execute("sleep 0.3")
    h2.kill()
    assert.equals(0, h2.wait(10))
    local s = slurp(out2)
    assert.equals(1, count_lines(s))
    assert.matches('entry="first"', s, 1, true)
  end)

  it("writes every field as JSON with format_as_json, and drops entries left without labels", function()
    local dir = tmp .. "/json"
    os.execute("mkdir -p " .. dir)
    journal(dir .. "/x.journal", {
      { usec = now_usec() - 1e6, fields = { MESSAGE = 'say "hi" <b>', PRIORITY = "5", _SYSTEMD_UNIT = "a.service" } },
    })
    local out = dir .. "/out.log"
    local f = proc.write(tmp .. "/json.lua", string.format([[
loki.source.journal "j" {
  path = %q,
  format_as_json = true,
  relabel_rules = { { source_labels = { "__journal__systemd_unit" }, target_label = "unit" } },
  forward_to = { loki.echo.e.receiver },
}
loki.source.journal "nolabels" {
  path = %q,
  forward_to = { loki.echo.e.receiver },
}
loki.echo "e" { file = %q }
]], dir, dir, out))
    local h = proc.start_run(f, { "--storage.path=" .. tmp .. "/json-data" })
    local got = entries_of(wait_lines(out, 1))
    os.execute("sleep 0.3")
    local _, body = proc.http("GET", h.base .. "/metrics")
    h.kill()
    assert.equals(0, h.wait(10))
    assert.equals(1, #got)
    assert.equals('{unit="a.service"}', got[1].labels)
    local line = got[1].line:gsub('\\"', '"'):gsub("\\\\", "\\")
    assert.matches('"MESSAGE":"say \\"hi\\" \\u003cb\\u003e"', line, 1, true) -- Go's escaping
    local obj = cjson.decode(line)
    assert.equals('say "hi" <b>', obj.MESSAGE)
    assert.equals("5", obj.PRIORITY)
    assert.equals("a.service", obj._SYSTEMD_UNIT)
    assert.equals(BOOT, obj._BOOT_ID)
    -- keys sorted, as Go's encoding/json writes a map
    local keys = {}
    for k in line:gmatch('"([%w_]+)":') do
      keys[#keys + 1] = k
    end
    local sorted = { unpack(keys) }
    table.sort(sorted)
    assert.same(sorted, keys)
    assert.matches('loki_source_journal_target_parsing_errors_total{component_id="loki.source.journal.nolabels",'
      .. 'error="empty_labels"} 1', body, 1, true)
  end)

  it("follows entries appended while it runs, and resumes after the last one sent on restart", function()
    local dir = tmp .. "/follow"
    os.execute("mkdir -p " .. dir)
    local data = tmp .. "/follow-data"
    local n = 0
    local function add(file, k)
      local es = {}
      for _ = 1, k do
        n = n + 1
        es[#es + 1] = { usec = now_usec(), fields = { MESSAGE = "m" .. n, _SYSTEMD_UNIT = "app.service" } }
      end
      journal(dir .. "/" .. file, es)
    end
    add("x.journal", 3)
    local out = dir .. "/out.log"
    local f = pipeline("follow", dir, out)
    local h = proc.start_run(f, { "--storage.path=" .. data })
    wait_lines(out, 3)
    add("x.journal", 2) -- appended to the file it reads
    wait_lines(out, 5)
    add("y.journal", 2) -- a new file in the directory
    wait_lines(out, 7)
    h.kill()
    assert.equals(0, h.wait(10))
    assert.matches("cursor%-loki%.source%.journal%.j", slurp(data .. "/loki.source.journal.j/positions.yml"))
    add("x.journal", 2) -- while it is stopped
    h = proc.start_run(f, { "--storage.path=" .. data })
    wait_lines(out, 9)
    add("y.journal", 1)
    wait_lines(out, 10)
    os.execute("sleep 0.3")
    h.kill("KILL")
    h.wait(10)
    add("x.journal", 1)
    h = proc.start_run(f, { "--storage.path=" .. data })
    wait_lines(out, 11)
    os.execute("sleep 0.3")
    h.kill()
    assert.equals(0, h.wait(10))
    local s = slurp(out)
    local lines = {}
    for _, e in ipairs(entries_of(s)) do
      lines[#lines + 1] = e.line
    end
    -- m1..m10 once each (the TERM restart repeats none); kill -9 may repeat what was sent
    -- after the last save (at most a second's worth), never lose any
    local want = {}
    for i = 1, 11 do
      want[#want + 1] = "m" .. i
    end
    local firsts, seen = {}, {}
    for _, l in ipairs(lines) do
      if not seen[l] then
        seen[l] = true
        firsts[#firsts + 1] = l
      end
    end
    assert.same(want, firsts)
    assert.same({ unpack(want, 1, 10) }, { unpack(lines, 1, 10) })
  end)

  it("reads from max_age ago when the saved cursor is older than max_age", function()
    local dir = tmp .. "/aged"
    os.execute("mkdir -p " .. dir)
    local data = tmp .. "/aged-data"
    journal(dir .. "/x.journal", {
      { usec = now_usec() - 60 * 1e6, fields = { MESSAGE = "a minute ago", _SYSTEMD_UNIT = "a.service" } },
    })
    local out = dir .. "/out.log"
    local h = proc.start_run(pipeline("aged1", dir, out, 'max_age = "1h",'), { "--storage.path=" .. data })
    wait_lines(out, 1)
    h.kill()
    assert.equals(0, h.wait(10))
    journal(dir .. "/x.journal", {
      { usec = now_usec() - 30 * 1e6, fields = { MESSAGE = "half a minute ago", _SYSTEMD_UNIT = "a.service" } },
      { usec = now_usec(), fields = { MESSAGE = "now", _SYSTEMD_UNIT = "a.service" } },
    })
    h = proc.start_run(pipeline("aged2", dir, out, 'max_age = "10s",'), { "--storage.path=" .. data })
    wait_lines(out, 2)
    os.execute("sleep 0.3")
    h.kill()
    assert.equals(0, h.wait(10))
    local lines = {}
    for _, e in ipairs(entries_of(slurp(out))) do
      lines[#lines + 1] = e.line
    end
    assert.same({ "a minute ago", "now" }, lines)
    assert.matches("saved journal cursor not used", h.read(), 1, true)
  end)

  it("refuses bad matches and Lua function rules with file:line; an unreadable path is unhealthy", function()
    local f = proc.write(tmp .. "/bad.lua", [[
loki.echo "e" {}
loki.source.journal "a" { matches = "PRIORITY", forward_to = { loki.echo.e.receiver } }
loki.source.journal "b" { relabel_rules = { function(l) return l end }, forward_to = { loki.echo.e.receiver } }
loki.source.journal "c" { labels = { ["bad-name"] = "x" }, forward_to = { loki.echo.e.receiver } }
]])
    local code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches('bad.lua:2: loki.source.journal "a": matches: "PRIORITY" is not FIELD=value', err, 1, true)
    assert.matches("bad.lua:3:", err, 1, true)
    assert.matches("Lua function rules are not supported", err, 1, true)
    assert.matches('bad.lua:4: loki.source.journal "c": labels: "bad-name" is not a valid label name', err, 1, true)
    local g = proc.write(tmp .. "/missing.lua", string.format([[
loki.echo "e" {}
loki.source.journal "m" { path = %q, forward_to = { loki.echo.e.receiver } }
]], tmp .. "/does-not-exist"))
    local h = proc.start_run(g, { "--storage.path=" .. tmp .. "/missing-data" })
    local _, body = proc.http("GET", h.base .. "/api/v0/components/loki.source.journal.m")
    h.kill()
    assert.equals(0, h.wait(10))
    assert.matches("unhealthy", body, 1, true)
    assert.matches("error creating journal tailer", body, 1, true)
  end)
end)
