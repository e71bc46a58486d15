-- End-to-end: `moonwatch check` refuses what `moonwatch run` refuses, both report
-- every problem as file:line: component: argument: what (never a traceback or a
-- path of moonwatch's sources), a reload is all or nothing, and the top-level
-- blocks are documented. Through the binary, as users run it.
local proc = require("helpers.proc")
local cjson = require("cjson")

local tmp = proc.tmpdir()
local SRC = proc.source

-- One file with every case of issue 15's "check passes what run refuses", and
-- the line each must be reported with.
local BROKEN = [[
prometheus.exporter.process "cmdline" { matcher = { { cmdline = { "(" } } } }
prometheus.exporter.process "name" { matcher = { { comm = { "x" }, name = "{{.Bad" } } }
prometheus.exporter.process "empty" { matcher = { {} } }
prometheus.exporter.unix "fs" { filesystem = { mount_points_exclude = "(" } }
prometheus.exporter.unix "self" { include_exporter_metrics = true }
prometheus.exporter.self "s" {}
prometheus.echo "e" {}
prometheus.scrape "params" { targets = prometheus.exporter.self.s.targets, forward_to = { prometheus.echo.e.receiver }, params = "bad" }
prometheus.scrape "limit" { targets = prometheus.exporter.self.s.targets, forward_to = { prometheus.echo.e.receiver }, sample_limit = -5 }
prometheus.scrape "headers" { targets = prometheus.exporter.self.s.targets, forward_to = { prometheus.echo.e.receiver }, http_headers = "bad" }
prometheus.scrape "cluster" { targets = prometheus.exporter.self.s.targets, forward_to = { prometheus.echo.e.receiver }, clustering = {} }
tracing { sampling_fraction = 2 }
logging { write_to = { prometheus.echo.e.receiver } }
]]

local EXPECTED = {
  ':1: prometheus.exporter.process "cmdline": matcher[1].cmdline[1]: invalid regex "(": missing closing ) (at offset 1)',
  ':2: prometheus.exporter.process "name": matcher[1].name: invalid template "{{.Bad": unclosed action',
  ':3: prometheus.exporter.process "empty": matcher[1]: needs at least one of comm, exe or cmdline',
  ':4: prometheus.exporter.unix "fs": filesystem.mount_points_exclude: invalid regex "(": missing closing )',
  ':5: prometheus.exporter.unix "self": include_exporter_metrics: not supported yet',
  ':8: prometheus.scrape "params": params: expected a map (a table of name = value), got string "bad"',
  ':9: prometheus.scrape "limit": sample_limit: expected a non-negative integer, got number -5',
  ':10: prometheus.scrape "headers": http_headers: expected a map (a table of name = value), got string "bad"',
  ':11: prometheus.scrape "cluster": clustering.enabled: missing required argument',
  ":12: tracing: sampling_fraction: must be between 0 and 1, got 2",
  ":13: logging: write_to: element 1: expected a log receiver (e.g. loki.write.x.receiver), got a metrics receiver",
}

-- Nothing of moonwatch's insides reaches a user.
local function assert_clean(text)
  assert.is_nil(text:find("stack traceback", 1, true), text)
  assert.is_nil(text:find(SRC .. "/lua/", 1, true), text)
  assert.is_nil(text:find(SRC .. "/stdlib/", 1, true), text)
  assert.is_nil(text:find("attempt to call a nil value", 1, true), text)
end

describe("moonwatch check and run", function()
  it("check reports every problem that run would meet, each once, and exits 1", function()
    local f = proc.write(tmp .. "/broken.lua", BROKEN)
    local code, out, err = proc.run({ "check", f })
    assert.equals(1, code, out)
    for _, e in ipairs(EXPECTED) do
      assert.matches(f .. e, err, 1, true)
    end
    local lines = select(2, err:gsub("\n", "\n"))
    assert.equals(#EXPECTED, lines, err)
    assert_clean(err)
  end)

  it("run refuses the same file with the same problems", function()
    local f = proc.write(tmp .. "/broken-run.lua", BROKEN)
    local code, _, err = proc.run({ "run", "--server.http.listen-addr=127.0.0.1:0", "--storage.path=" .. tmp .. "/d", f })
    assert.equals(1, code)
    for _, e in ipairs(EXPECTED) do
      assert.matches(f .. e, err, 1, true)
    end
    assert_clean(err)
  end)

  it("http_headers = \"bad\" alone is a problem of the argument, not a crash", function()
    local f = proc.write(tmp .. "/headers.lua", [[
prometheus.exporter.self "s" {}
prometheus.echo "e" {}
prometheus.scrape "x" {
  targets      = prometheus.exporter.self.s.targets,
  forward_to   = { prometheus.echo.e.receiver },
  http_headers = "bad",
}
]])
    local code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.equals(f .. ':3: prometheus.scrape "x": http_headers: expected a map (a table of name = value), got '
      .. 'string "bad"\n', err)
  end)

  it("logging \"x\" {} says the block takes no label", function()
    local f = proc.write(tmp .. "/label.lua", 'logging "x" {}\n')
    local code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.equals(f .. ':1: logging: a top-level block takes no label: write logging { ... }, not logging "x" { ... }\n',
      err)
  end)

  it("tracing's jaeger_remote sampler is refused as not supported yet; the rest of the block is taken", function()
    local f = proc.write(tmp .. "/notyet.lua", "tracing { sampling_fraction = 0.5, sampler = { jaeger_remote = {} } }\n")
    local code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches(f .. ":1: tracing: sampler.jaeger_remote: not supported yet", err, 1, true)
    local ok = proc.write(tmp .. "/defaults.lua", 'tracing { sampling_fraction = 0.5 }\nlogging { write_to = {} }\n')
    assert.equals(0, (proc.run({ "check", ok })))
  end)

  it("doc documents the top-level blocks logging and tracing", function()
    local code, out = proc.run({ "doc", "logging" })
    assert.equals(0, code)
    assert.matches("# logging", out, 1, true)
    assert.matches('| `level` | string | Lowest level of log lines emitted. | "info" | no |', out, 1, true)
    assert.matches("| `write_to` | log_receivers |", out, 1, true)
    local code2, out2 = proc.run({ "doc", "tracing" })
    assert.equals(0, code2)
    assert.matches("| `sampling_fraction` | number | Fraction of traces to keep (0 to 1), decided per trace", out2, 1,
      true)
    local _, list = proc.run({ "doc" })
    assert.matches("Top-level blocks:\n  logging ", list, 1, true)
  end)

  it("run says once, at info, which of node_exporter's default collectors exporter.unix does not have", function()
    local f = proc.write(tmp .. "/unix.lua", 'prometheus.exporter.unix "h" {}\n')
    local h = proc.start_run(f, { "--storage.path=" .. tmp .. "/d" })
    h.kill("TERM")
    assert.equals(0, h.wait(10))
    local log = h.read()
    local n = select(2, log:gsub("default collectors that moonwatch does not have are left out", ""))
    assert.equals(1, n, log)
    assert.matches('level=info component_id=prometheus.exporter.unix.h msg="node_exporter default collectors that '
      .. 'moonwatch does not have are left out" collectors=', log, 1, true)
  end)
end)

describe("POST /-/reload", function()
  local h, file
  local GOOD = [[
prometheus.exporter.self "s" {}
prometheus.echo "e" { file = "%s" }
prometheus.scrape "x" {
  targets         = prometheus.exporter.self.s.targets,
  forward_to      = { prometheus.echo.e.receiver },
  scrape_interval = "%s",
}
prometheus.exporter.process "p" { matcher = { { %s } } }
]]
  local COMM = 'comm = { "moonwatch" }'


  local function components()
    local _, body = proc.http("GET", h.base .. "/api/v0/components")
    local by = {}
    for _, c in ipairs(cjson.decode(body)) do
      by[c.id] = c
    end
    return by
  end

  local function metric(body, name)
    return tonumber(body:match("\n" .. name .. " ([^\n]+)"))
  end

  setup(function()
    file = proc.write(tmp .. "/reload.lua", GOOD:format(tmp .. "/echo.prom", "30s", COMM))
    h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data" })
  end)

  teardown(function()
    h.kill("TERM")
    h.wait(10)
  end)

  it("with one bad argument answers 400 listing the problem, changes nothing and records the failure", function()
    -- issue 15's case: a new scrape interval, a new component, and a bad regex in a running exporter
    proc.write(file, GOOD:format(tmp .. "/echo.prom", "20s", 'cmdline = { "(" }')
      .. 'prometheus.exporter.unix "new" {}\n')
    local status, body = proc.http("POST", h.base .. "/-/reload")
    assert.equals(400, status)
    assert.equals(file .. ':8: prometheus.exporter.process "p": matcher[1].cmdline[1]: invalid regex "(": '
      .. "missing closing ) (at offset 1)\n", body)
    local by = components()
    assert.same({ "prometheus.echo.e", "prometheus.exporter.process.p", "prometheus.exporter.self.s",
      "prometheus.scrape.x" }, proc.sorted_keys(by))
    for id, c in pairs(by) do
      assert.equals("healthy", c.health.state, id)
    end
    local _, detail = proc.http("GET", h.base .. "/api/v0/components/prometheus.scrape.x")
    assert.equals("30s", cjson.decode(detail).arguments.scrape_interval)
    local _, m = proc.http("GET", h.base .. "/metrics")
    assert.equals(0, metric(m, "moonwatch_config_last_load_successful"))
    assert.equals(1, metric(m, "moonwatch_config_load_failures_total"))
  end)

  it("with an error only evaluation finds (a function's value) also answers 400 and changes nothing", function()
    proc.write(file, GOOD:format(tmp .. "/echo.prom", "20s", COMM)
      .. 'prometheus.exporter.unix "new" {}\n'
      .. 'prometheus.exporter.process "bad" { matcher = function() return { { comm = { "x" }, name = "{{.Nope}}" } } end }\n')
    local status, body = proc.http("POST", h.base .. "/-/reload")
    assert.equals(400, status)
    assert.matches(file .. ':10: prometheus.exporter.process "bad": matcher[1].name: invalid template "{{.Nope}}"', body,
      1, true)
    assert_clean(body)
    assert.is_nil(components()["prometheus.exporter.unix.new"])
    local _, m = proc.http("GET", h.base .. "/metrics")
    assert.equals(0, metric(m, "moonwatch_config_last_load_successful"))
    assert.equals(2, metric(m, "moonwatch_config_load_failures_total"))
  end)

  it("of a good file applies every change and records the success", function()
    proc.write(file, GOOD:format(tmp .. "/echo.prom", "20s", COMM) .. 'prometheus.exporter.unix "new" {}\n')
    local status, body = proc.http("POST", h.base .. "/-/reload")
    assert.equals(200, status, body)
    local by = components()
    assert.truthy(by["prometheus.exporter.unix.new"])
    local _, detail = proc.http("GET", h.base .. "/api/v0/components/prometheus.scrape.x")
    assert.equals("20s", cjson.decode(detail).arguments.scrape_interval)
    local _, m = proc.http("GET", h.base .. "/metrics")
    assert.equals(1, metric(m, "moonwatch_config_last_load_successful"))
  end)

  it("/metrics has moonwatch_component_health per component beside the aggregate gauge", function()
    local _, m = proc.http("GET", h.base .. "/metrics")
    assert.matches("# TYPE moonwatch_component_health gauge", m, 1, true)
    for _, id in ipairs({ "prometheus.echo.e", "prometheus.exporter.self.s", "prometheus.scrape.x",
      "prometheus.exporter.unix.new", "prometheus.exporter.process.p" }) do
      assert.matches('moonwatch_component_health{component_id="' .. id .. '",health_type="healthy"} 1', m, 1, true)
    end
    assert.matches('moonwatch_component_controller_running_components{health_type="healthy"} 5', m, 1, true)
  end)

  it("that removes a component removes its series from /metrics; the others keep theirs", function()
    local _, m = proc.http("GET", h.base .. "/metrics")
    assert.matches('prometheus_scrape_targets_gauge{component_id="prometheus.scrape.x"} 1', m, 1, true)
    -- the same file without prometheus.scrape "x" (its lines 3 to 7)
    local lines = {}
    for line in (GOOD:format(tmp .. "/echo.prom", "20s", COMM) .. 'prometheus.exporter.unix "new" {}\n'):gmatch("[^\n]*\n") do
      lines[#lines + 1] = line
    end
    for _ = 3, 7 do
      table.remove(lines, 3)
    end
    proc.write(file, table.concat(lines))
    local status, body = proc.http("POST", h.base .. "/-/reload")
    assert.equals(200, status, body)
    assert.is_nil(components()["prometheus.scrape.x"])
    _, m = proc.http("GET", h.base .. "/metrics")
    assert.not_matches('component_id="prometheus.scrape.x"', m, 1, true)
    assert.matches('moonwatch_component_health{component_id="prometheus.exporter.process.p",health_type="healthy"} 1',
      m, 1, true)
    -- and back: the component added again under the same id reports again
    proc.write(file, GOOD:format(tmp .. "/echo.prom", "20s", COMM) .. 'prometheus.exporter.unix "new" {}\n')
    status, body = proc.http("POST", h.base .. "/-/reload")
    assert.equals(200, status, body)
    _, m = proc.http("GET", h.base .. "/metrics")
    assert.matches('prometheus_scrape_targets_gauge{component_id="prometheus.scrape.x"} 1', m, 1, true)
    assert.matches('moonwatch_component_health{component_id="prometheus.scrape.x",health_type="healthy"} 1', m, 1, true)
  end)
end)
