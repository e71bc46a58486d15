-- End-to-end: the logs part of the reference's self-monitoring guide (004, section 3) as a
-- user writes it, through `moonwatch run`: the collector's unit read from the journal (a
-- discovery.relabel that only holds rules keeps its unit) and its log file tailed, both
-- shipped by loki.write to the suite's strict Loki receiver; lines appended while it runs
-- arrive too, each once, with the labels Alloy gives them.
local proc = require("helpers.proc")
local logs = require("helpers.logs")

local tmp = proc.tmpdir()
local FIXTURES = proc.source .. "/tests/lua/fixtures/components"

local wait_for = proc.wait_for

describe("the self-monitoring guide's logs pipeline", function()
  local h
  after_each(function()
    if h then -- also when an assertion failed before the test stopped it
      h.kill("KILL")
      h.wait(10)
      h = nil
    end
    proc.kill_spawned()
  end)

  it("ships the collector's journal unit and its log file to Loki", function()
    local jdir, ldir = tmp .. "/journal", tmp .. "/log"
    os.execute("mkdir -p " .. jdir .. " " .. ldir)
    logs.journal(jdir .. "/system.journal", {
      { fields = { MESSAGE = "moonwatch started", _SYSTEMD_UNIT = "moonwatch.service", PRIORITY = "6" } },
      { fields = { MESSAGE = "sshd noise", _SYSTEMD_UNIT = "ssh.service", PRIORITY = "6" } },
      { fields = { MESSAGE = "moonwatch warns", _SYSTEMD_UNIT = "moonwatch.service", PRIORITY = "4" } },
    })
    proc.write(ldir .. "/moonwatch.log", 'level=info msg="from the file 1"\nlevel=warn msg="from the file 2"\n')
    local port = logs.start_receiver(tmp)
    local f = proc.write(tmp .. "/pipeline.lua", string.format([[
discovery.relabel "journal_filter" {
  rule = {
    { source_labels = { "__journal__systemd_unit" }, regex = "moonwatch\\.service", action = "keep" },
    { source_labels = { "__journal__systemd_unit" }, target_label = "unit" },
  },
}

loki.source.journal "read_moonwatch_logs" {
  path          = %q,
  forward_to    = { loki.write.loki_endpoint.receiver },
  relabel_rules = discovery.relabel.journal_filter.rules,
  labels        = { job = "moonwatch/journal" },
}

local_.file_match "moonwatch_log_file" {
  path_targets = { { __path__ = %q, job = "moonwatch/file" } },
}

loki.source.file "read_from_file" {
  targets    = local_.file_match.moonwatch_log_file.targets,
  forward_to = { loki.write.loki_endpoint.receiver },
}

loki.write "loki_endpoint" {
  endpoint = { url = "http://127.0.0.1:%d/loki/api/v1/push", tenant_id = "ops" },
  external_labels = { collector = "test" },
}
]], jdir, ldir .. "/*.log", port))
    h = proc.start_run(f, { "--storage.path=" .. tmp .. "/data" })
    local function lines()
      local out = {}
      for _, e in ipairs(logs.receiver_get(port, "entries")) do
        out[#out + 1] = e.labels .. " " .. e.line
      end
      table.sort(out)
      return out
    end
    wait_for(function() return #lines() >= 4 end, 15, "the first four lines")
    -- appended while running: a line to the file, an entry of each unit to the journal
    local lf = assert(io.open(ldir .. "/moonwatch.log", "a"))
    lf:write('level=error msg="from the file 3"\n')
    lf:close()
    logs.journal(jdir .. "/system.journal", {
      { fields = { MESSAGE = "moonwatch again", _SYSTEMD_UNIT = "moonwatch.service", PRIORITY = "3" } },
      { fields = { MESSAGE = "more sshd noise", _SYSTEMD_UNIT = "ssh.service", PRIORITY = "6" } },
    })
    wait_for(function() return #lines() >= 6 end, 15, "the appended lines")
    os.execute("sleep 1.5") -- nothing more may come (no noise, no duplicates)
    local file = ldir .. "/moonwatch.log"
    assert.same({
      '{collector="test", filename="' .. file .. '", job="moonwatch/file"} level=error msg="from the file 3"',
      '{collector="test", filename="' .. file .. '", job="moonwatch/file"} level=info msg="from the file 1"',
      '{collector="test", filename="' .. file .. '", job="moonwatch/file"} level=warn msg="from the file 2"',
      '{collector="test", job="moonwatch/journal", unit="moonwatch.service"} moonwatch again',
      '{collector="test", job="moonwatch/journal", unit="moonwatch.service"} moonwatch started',
      '{collector="test", job="moonwatch/journal", unit="moonwatch.service"} moonwatch warns',
    }, lines())
    for _, r in ipairs(logs.receiver_get(port, "requests")) do
      assert.equals("ops", r.tenant)
    end
    h.kill("TERM")
    assert.equals(0, h.wait(10))
  end)

  it("sends each tenant's entries (loki.process stage.tenant) under its X-Scope-OrgID, without the label", function()
    local port = logs.start_receiver(tmp)
    local f = proc.write(tmp .. "/tenant.lua", string.format([[
test.logsource "s" {
  entries = {
    { labels = { job = "a", team = "red" }, line = "r1" },
    { labels = { job = "a", team = "blue" }, line = "b1" },
    { labels = { job = "a" }, line = "none1" },
    { labels = { job = "a", team = "red" }, line = "r2" },
  },
  forward_to = { loki.process.p.receiver },
}
loki.process "p" {
  forward_to = { loki.write.w.receiver },
  stage.tenant { label = "team" },
  stage.label_drop { values = { "team" } },
}
loki.write "w" { endpoint = { url = "http://127.0.0.1:%d/loki/api/v1/push", tenant_id = "default-team" } }
]], port))
    h = proc.start_run(f, { "--storage.path=" .. tmp .. "/data-tenant", "--component.path=" .. FIXTURES })
    local got = wait_for(function()
      local es = logs.receiver_get(port, "entries")
      return #es >= 4 and es
    end, 15, "four entries")
    local by = {}
    for _, e in ipairs(got) do
      by[e.line] = e.tenant .. " " .. e.labels
    end
    assert.same({
      r1 = 'red {job="a"}', r2 = 'red {job="a"}', b1 = 'blue {job="a"}', none1 = 'default-team {job="a"}',
    }, by)
    h.kill("TERM")
    assert.equals(0, h.wait(10))
  end)
end)
