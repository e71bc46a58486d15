-- End-to-end: loki.relabel through `moonwatch run`: rules rewrite each stream's labels (C
-- rules and Lua function rules), entries of dropped streams are dropped, lines, timestamps
-- and structured metadata pass unchanged, and Alloy's loki_relabel_* metrics count.
local proc = require("helpers.proc")
local logs = require("helpers.logs")

local FIXTURES = proc.source .. "/tests/lua/fixtures/components"
local tmp = proc.tmpdir()

local function slurp(path)
  local f = io.open(path, "rb")
  local s = f and f:read("*a") or ""
  if f then
    f:close()
  end
  return s
end

local function lines_of(path, n)
  local deadline = os.time() + 10
  local s
  repeat
    s = slurp(path)
    local _, k = s:gsub("\n", "")
    if k >= n then
      break
    end
    os.execute("sleep 0.05")
  until os.time() > deadline
  return s
end

local ENTRIES = [[
  entries = {
    { labels = { job = "app", pod = "a-1" }, line = "one", ts = 1700000000 },
    { labels = { job = "drop-me" }, line = "gone", ts = 1700000001 },
    { labels = { job = "app", pod = "a-1" }, line = "two", ts = 1700000002, metadata = { trace_id = "t" } },
    { labels = { job = "app", pod = "b-2" }, line = "three", ts = 1700000003 },
  },
]]

describe("loki.relabel", function()
  it("relabels each stream with C rules, drops dropped streams, counts as Alloy", function()
    local out = tmp .. "/c/out.log"
    local f = proc.write(tmp .. "/c.lua", string.format([[
test.logsource "s" {
%s
  forward_to = { loki.relabel.r.receiver },
}
loki.relabel "r" {
  rule = {
    { source_labels = { "job" }, regex = "drop-.*", action = "drop" },
    { source_labels = { "pod" }, regex = "(.)-.*", target_label = "group" },
    { regex = "pod", action = "labeldrop" },
  },
  forward_to = { loki.echo.e.receiver },
}
loki.echo "e" { file = %q }
]], ENTRIES, out))
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES })
    local got = lines_of(out, 3)
    local _, body = proc.http("GET", h.base .. "/metrics")
    h.kill()
    assert.equals(0, h.wait(10))
    assert.equals(
      'ts=2023-11-14T22:13:20.000000000Z labels="{group=\\"a\\", job=\\"app\\"}" entry="one"\n'
      .. 'ts=2023-11-14T22:13:22.000000000Z labels="{group=\\"a\\", job=\\"app\\"}" entry="two" '
      .. 'structured_metadata="{trace_id=\\"t\\"}"\n'
      .. 'ts=2023-11-14T22:13:23.000000000Z labels="{group=\\"b\\", job=\\"app\\"}" entry="three"\n', got)
    local function metric(name)
      return tonumber(body:match(name .. '{component_id="loki.relabel.r"} (%S+)'))
    end
    assert.equals(4, metric("loki_relabel_entries_processed"))
    assert.equals(3, metric("loki_relabel_entries_written"))
    assert.equals(3, metric("loki_relabel_cache_misses")) -- three distinct streams
    assert.equals(1, metric("loki_relabel_cache_hits")) -- the second entry of a-1
    assert.equals(3, metric("loki_relabel_cache_size"))
    assert.matches("# TYPE loki_relabel_cache_size gauge", body, 1, true)
    assert.matches("# TYPE loki_relabel_entries_processed counter", body, 1, true)
  end)

  it("runs Lua function rules once per stream, and the cache serves the rest", function()
    local out = tmp .. "/lua/out.log"
    local f = proc.write(tmp .. "/lua.lua", string.format([[
local calls = 0
test.logsource "s" {
%s
  interval = "100ms",
  forward_to = { loki.relabel.r.receiver },
}
loki.relabel "r" {
  rule = {
    function(l)
      calls = calls + 1
      if l.job == "drop-me" then return nil end
      l.calls = tostring(calls)
      return l
    end,
  },
  forward_to = { loki.echo.e.receiver },
}
loki.echo "e" { file = %q }
]], ENTRIES, out))
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES })
    local got = lines_of(out, 9) -- three batches
    h.kill()
    assert.equals(0, h.wait(10))
    -- calls numbered in stream order of the first batch, never again after
    local seen = {}
    for l in got:gmatch("labels=(.-) entry=") do
      seen[l] = true
    end
    assert.same({
      ['"{calls=\\"1\\", job=\\"app\\", pod=\\"a-1\\"}"'] = true,
      ['"{calls=\\"3\\", job=\\"app\\", pod=\\"b-2\\"}"'] = true,
    }, seen)
    assert.not_matches("gone", got, 1, true)
  end)

  it("bounds its cache by max_cache_size, also for a source that reuses its batch", function()
    -- loki.source.journal sends every batch in the same batch object
    local dir = tmp .. "/bound"
    os.execute("mkdir -p " .. dir)
    local function journal(units)
      local es = {}
      for i, u in ipairs(units) do
        es[i] = { fields = { MESSAGE = "m", _SYSTEMD_UNIT = u } }
      end
      logs.journal(dir .. "/x.journal", es)
    end
    journal({ "a", "b", "c" })
    local out = dir .. "/out.log"
    local f = proc.write(tmp .. "/bound.lua", string.format([[
loki.source.journal "j" {
  path = %q,
  relabel_rules = { { source_labels = { "__journal__systemd_unit" }, target_label = "unit" } },
  forward_to = { loki.relabel.r.receiver },
}
loki.relabel "r" {
  max_cache_size = 2,
  rule = { { source_labels = { "unit" }, target_label = "u" } },
  forward_to = { loki.echo.e.receiver },
}
loki.echo "e" { file = %q }
]], dir, out))
    local h = proc.start_run(f, { "--storage.path=" .. tmp .. "/bound-data" })
    lines_of(out, 3)
    journal({ "d", "e" })
    lines_of(out, 5)
    local _, body = proc.http("GET", h.base .. "/metrics")
    h.kill()
    assert.equals(0, h.wait(10))
    -- three results after the first batch (a batch may pass the size), emptied before the second
    assert.equals('loki_relabel_cache_size{component_id="loki.relabel.r"} 2',
      body:match('(loki_relabel_cache_size{component_id="loki.relabel.r"} %d+)'))
    assert.equals(5, tonumber(body:match('loki_relabel_cache_misses{component_id="loki.relabel.r"} (%d+)')))
  end)

  it("refuses a bad rule and a metrics receiver with file:line", function()
    local f = proc.write(tmp .. "/bad.lua", [[
loki.echo "e" {}
loki.relabel "r" {
  rule = { { action = "hashmod", target_label = "x" } },
  forward_to = { loki.echo.e.receiver },
}
]])
    local code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches("bad.lua:2:", err, 1, true)
    assert.matches("modulus", err, 1, true)
  end)
end)
