-- Loading a pipeline: everything that running refuses is refused when it is
-- checked (by the schemas, at plan time), a reload is all or nothing, internal
-- errors never show a traceback or a path of moonwatch's sources, and each
-- component's health is a metric.
local controller = require("moonwatch.controller")
local errors = require("moonwatch.errors")
local loop = require("helpers.loop")
local proc = require("helpers.proc")
local log = require("moonwatch.log")

local SRC = os.getenv("MOONWATCH_SOURCE_DIR") or "."
local INTERNAL = SRC .. "/tests/lua/fixtures/internal"
local DIRS = { SRC .. "/tests/lua/fixtures/components", INTERNAL, SRC .. "/stdlib" }
-- test.crashy stands for a component of moonwatch's own: its errors are bugs of ours
errors.add_source_dir(INTERNAL)

local tmp = proc.tmpdir()
local n = 0
local function pipeline_file(src)
  n = n + 1
  return proc.write(string.format("%s/c%d.lua", tmp, n), src)
end

local function new_ctrl()
  return controller.new({ component_path = DIRS, storage_path = tmp .. "/data" })
end

local function check(src)
  local file = pipeline_file(src)
  local plan, problems = new_ctrl():plan(file)
  return plan, problems or {}, file
end

local function load(src)
  local ctrl = new_ctrl()
  local file = pipeline_file(src)
  local ok, problems = ctrl:load(file)
  return ctrl, ok, problems, file
end

-- Log entries emitted while fn runs (every level).
local function logged(fn)
  local entries = {}
  log.configure({ level = "debug", out = io.open("/dev/null", "w") })
  local remove = log.add_sink(function(level, _, entry)
    entry.level = level
    entries[#entries + 1] = entry
  end)
  local ok, err = pcall(fn)
  remove()
  log.configure({ level = "error", out = io.stderr })
  assert(ok, err)
  return entries
end

local SELF = 'prometheus.exporter.self "s" {}\nprometheus.echo "e" { file = "/dev/null" }\n'
local function scrape(extra)
  return SELF .. 'prometheus.scrape "x" {\n  targets = prometheus.exporter.self.s.targets,\n'
    .. '  forward_to = { prometheus.echo.e.receiver },\n  ' .. extra .. "\n}\n"
end

-- Each: a pipeline that `moonwatch run` refused (or that was accepted and ignored),
-- and the problem `check` must report (file:line: component: argument: what).
local REFUSED = {
  { "an invalid cmdline regex in exporter.process",
    'prometheus.exporter.process "p" { matcher = { { cmdline = { "(" } } } }',
    ':1: prometheus.exporter.process "p": matcher[1].cmdline[1]: invalid regex "(": missing closing ) (at offset 1)' },
  { "an invalid name template in exporter.process",
    'prometheus.exporter.process "p" { matcher = { { comm = { "x" }, name = "{{.Bad" } } }',
    ':1: prometheus.exporter.process "p": matcher[1].name: invalid template "{{.Bad": unclosed action' },
  { "an unknown template field in exporter.process",
    'prometheus.exporter.process "p" { matcher = { { comm = { "x" }, name = "{{.Nope}}" } } }',
    ':1: prometheus.exporter.process "p": matcher[1].name: invalid template "{{.Nope}}": unsupported action' },
  { "an empty matcher in exporter.process",
    'prometheus.exporter.process "p" { matcher = { {} } }',
    ':1: prometheus.exporter.process "p": matcher[1]: needs at least one of comm, exe or cmdline' },
  { "an invalid mount_points_exclude regex in exporter.unix",
    'prometheus.exporter.unix "u" { filesystem = { mount_points_exclude = "(" } }',
    ':1: prometheus.exporter.unix "u": filesystem.mount_points_exclude: invalid regex "("' },
  { "an invalid netdev regex in exporter.unix",
    'prometheus.exporter.unix "u" { netdev = { device_include = "[" } }',
    ':1: prometheus.exporter.unix "u": netdev.device_include: invalid regex "["' },
  { "include_exporter_metrics in exporter.unix (not supported yet)",
    'prometheus.exporter.unix "u" { include_exporter_metrics = true }',
    ':1: prometheus.exporter.unix "u": include_exporter_metrics: not supported yet' },
  { "params = \"bad\"", scrape('params = "bad",'),
    ':3: prometheus.scrape "x": params: expected a map (a table of name = value), got string "bad"' },
  { "a negative uint (sample_limit = -5)", scrape("sample_limit = -5,"),
    ':3: prometheus.scrape "x": sample_limit: expected a non-negative integer, got number -5' },
  { "a zero scrape_interval", scrape('scrape_interval = "0s",'),
    ':3: prometheus.scrape "x": scrape_interval: must be greater than 0s, got 0s' },
  { "http_headers = \"bad\" (it crashed check)", scrape('http_headers = "bad",'),
    ':3: prometheus.scrape "x": http_headers: expected a map (a table of name = value), got string "bad"' },
  { "clustering = {} (enabled is required)", scrape("clustering = {},"),
    ':3: prometheus.scrape "x": clustering.enabled: missing required argument' },
  { "clustering enabled (not supported yet)", scrape("clustering = { enabled = true },"),
    ':3: prometheus.scrape "x": clustering.enabled: not supported yet' },
  { "tracing { sampling_fraction = 2 }", "tracing { sampling_fraction = 2 }",
    ":1: tracing: sampling_fraction: must be between 0 and 1, got 2" },
  { "tracing with a jaeger_remote sampler (not supported yet)",
    'tracing { sampling_fraction = 0.5, sampler = { jaeger_remote = {} } }',
    ":1: tracing: sampler.jaeger_remote: not supported yet" },
  { "tracing { write_to = { <a metrics receiver> } }",
    'prometheus.echo "e" {}\ntracing { write_to = { prometheus.echo.e.receiver } }',
    ":2: tracing: write_to: element 1: expected an otelcol consumer of traces "
      .. "(e.g. otelcol.exporter.otlp.x.input), got a metrics receiver" },
  { "logging { write_to = { <a metrics receiver> } }",
    'prometheus.echo "e" {}\nlogging { write_to = { prometheus.echo.e.receiver } }',
    ":2: logging: write_to: element 1: expected a log receiver (e.g. loki.write.x.receiver), got a metrics receiver" },
  { "logging \"x\" {} (it was 'attempt to call a nil value')", 'logging "x" {}',
    ':1: logging: a top-level block takes no label: write logging { ... }, not logging "x" { ... }' },
  { "max_cache_size = 0 without cache_ttl in prometheus.relabel (Alloy's TTL mode needs both)",
    'prometheus.echo "e" {}\nprometheus.relabel "r" { forward_to = { prometheus.echo.e.receiver }, max_cache_size = 0 }',
    ':2: prometheus.relabel "r": one of max_cache_size or cache_ttl must be set' },
  { "a negative hashmod modulus",
    'discovery.relabel "r" { targets = {}, rule = { { action = "hashmod", modulus = -1, target_label = "a" } } }',
    ':1: discovery.relabel "r": rule[1].modulus: expected a non-negative integer, got number -1' },
  { "remote_write queue capacity 0",
    'prometheus.remote_write "w" { endpoint = { url = "http://x/api/v1/write", queue_config = { capacity = 0 } } }',
    ':1: prometheus.remote_write "w": endpoint.queue_config.capacity: must be at least 1, got 0' },
  { "a validator that crashes is an internal error, without a path or a traceback",
    'test.crashy "c" { crash_in = "validate" }',
    ":1: internal error in test.crashy \"c\": attempt to index field 'missing' (a nil value)" },
  { "a check that crashes is an internal error too",
    'test.crashy "c" { n = 13 }',
    ":1: internal error in test.crashy \"c\": n: attempt to index field 'missing' (a nil value)" },
}

describe("check refuses what run refuses", function()
  setup(function()
    log.configure({ level = "error" })
  end)

  for _, c in ipairs(REFUSED) do
    it(c[1], function()
      local plan, problems, file = check(c[2])
      assert.is_nil(plan)
      assert.equals(1, #problems, table.concat(problems, "\n"))
      assert.matches(file .. c[3], problems[1], 1, true)
      assert.is_nil(problems[1]:find("stack traceback", 1, true))
      assert.is_nil(problems[1]:find(SRC .. "/lua/", 1, true))
      assert.is_nil(problems[1]:find(INTERNAL, 1, true))
    end)
  end

  it("checks the references of the top-level blocks", function()
    local _, problems, file = check("logging { write_to = { loki.write.nope.receiver } }")
    assert.matches(file .. ":1: logging: reference to undeclared component: loki.write.nope.receiver", problems[1], 1,
      true)
  end)

  it("reports every problem of a file at once", function()
    local _, problems = check([[
prometheus.exporter.process "p" { matcher = { { cmdline = { "(" } }, {} } }
prometheus.exporter.unix "u" { filesystem = { mount_points_exclude = "(" }, include_exporter_metrics = true }
tracing { sampling_fraction = 2 }
]])
    assert.equals(5, #problems, table.concat(problems, "\n"))
  end)

  it("logs an internal error's traceback at debug level only", function()
    local problems
    local entries = logged(function()
      local _
      _, problems = check('test.crashy "c" { crash_in = "validate" }')
    end)
    assert.equals(1, #problems)
    local found
    for _, e in ipairs(entries) do
      if e.msg == "internal error" then
        found = e
      end
    end
    assert.truthy(found)
    assert.equals("debug", found.level)
    assert.matches("stack traceback", found.traceback, 1, true)
  end)

  it("accepts what is valid, the not-yet-supported blocks at their defaults included", function()
    local plan, problems = check(scrape('params = { a = "1", b = { "2", "3" } }, http_headers = { ["X-A"] = "v" },'
      .. " sample_limit = 5, clustering = { enabled = false },")
      .. 'tracing { sampling_fraction = 0.1, write_to = {} }\nlogging { level = "warn", write_to = {} }\n'
      .. 'prometheus.exporter.process "p" { matcher = { { cmdline = { "^/usr/(?P<x>bin)" }, name = "{{.Matches.x}}" } } }\n')
    assert.truthy(plan, table.concat(problems, "\n"))
  end)

  it("checks a value only running knows (a function argument) when it is applied", function()
    local ctrl, ok, problems = load('test.consumer "c" { interval = function() return 5 end }')
    assert.is_nil(ok)
    assert.matches(':1: test.consumer "c": interval: expected a duration string', problems[1], 1, true)
    ctrl:stop()
  end)
end)

describe("Lua function rules in a pipeline", function()
  it("are rules (called with each label set), not function arguments", function()
    local ctrl, ok, problems = load([[
discovery.relabel "r" {
  targets = { { __address__ = "a:1" }, { __address__ = "b:2" } },
  rule = {
    { source_labels = { "__address__" }, regex = "a:.*", action = "drop" },
    function(labels) labels.seen = "yes"; return labels end,
  },
}
]])
    assert.is_true(ok, problems and table.concat(problems, "\n"))
    assert.same({ { __address__ = "b:2", seen = "yes" } }, ctrl.nodes["discovery.relabel.r"].exports.output)
    ctrl:stop()
  end)
end)

describe("reload", function()
  setup(function()
    log.configure({ level = "error" })
  end)
  before_each(function()
    _G.test_consumers, _G.test_producers, _G.test_stop_order = {}, {}, {}
  end)

  it("is all or nothing: an error found when applying changes nothing, and every such error is listed", function()
    local ctrl, ok, _, file = load([[
test.producer "p" { count = 1 }
test.consumer "c" { targets = test.producer.p.targets }
test.consumer "old" {}
]])
    assert.is_true(ok)
    local c, old = _G.test_consumers["test.consumer.c"], _G.test_consumers["test.consumer.old"]
    local p_node = ctrl.nodes["test.producer.p"]
    proc.write(file, [[
test.consumer "new" { targets = test.producer.p.targets }
test.producer "p" { count = 2 }
test.consumer "c" { targets = test.producer.p.targets, interval = "5m" }
test.consumer "bad" { interval = function() return 5 end }
test.consumer "worse" { token = function() return {} end }
]])
    local ok2, problems = ctrl:load()
    assert.is_nil(ok2)
    local all = table.concat(problems, "\n")
    assert.matches(':4: test.consumer "bad": interval: expected a duration string', all, 1, true)
    assert.matches(':5: test.consumer "worse": token: expected a string (secret)', all, 1, true)
    assert.equals(2, #problems, all)
    -- nothing changed: the same nodes, arguments, exports and declarations; the new one was stopped
    assert.same({ "test.producer.p", "test.consumer.c", "test.consumer.old" }, ctrl.order)
    assert.equals(p_node, ctrl.nodes["test.producer.p"])
    assert.equals(1, #p_node.exports.targets)
    assert.equals(1, #c.history)
    assert.equals(60, c.history[1].interval)
    assert.equals(2, ctrl.nodes["test.consumer.c"].decl.line)
    assert.is_false(old.stopped)
    assert.is_true(_G.test_consumers["test.consumer.new"].stopped)
    assert.equals("healthy", ctrl.nodes["test.consumer.c"].health.state)
    assert.is_false(ctrl.stats.last_load_ok)
    assert.equals(1, ctrl.stats.load_failures)
    -- the same changes without the errors apply, and dependents see the new exports at once
    proc.write(file, [[
test.producer "p" { count = 2 }
test.consumer "c" { targets = test.producer.p.targets, interval = "5m" }
test.consumer "new" { targets = test.producer.p.targets }
]])
    assert.is_true(ctrl:load())
    assert.equals(2, #c.history[#c.history].targets)
    assert.equals(300, c.history[#c.history].interval)
    assert.is_true(old.stopped)
    local new = _G.test_consumers["test.consumer.new"].history
    assert.equals(2, #new[#new].targets)
    assert.is_true(ctrl.stats.last_load_ok)
    ctrl:stop()
  end)

  it("a component that cannot start fails the load and stops what the load created", function()
    local ctrl, ok, problems = load([[
test.consumer "first" {}
test.crashy "c" { crash_in = "new" }
]])
    assert.is_nil(ok)
    assert.equals(1, #problems)
    assert.matches(':2: test.crashy "c": internal error in test.crashy.c: attempt to index field \'missing\' (a nil value)',
      problems[1], 1, true)
    assert.is_true(_G.test_consumers["test.consumer.first"].stopped)
    ctrl:stop()
  end)
end)

describe("internal errors of a running component", function()
  setup(function()
    log.configure({ level = "error" })
  end)

  it("show as 'internal error in <id>: <message>' in its health, without a path or a traceback", function()
    local ctrl, ok, problems, file = load('test.crashy "r" { crash_in = "run" }\ntest.crashy "u" {}\n')
    assert.is_true(ok, problems and table.concat(problems, "\n"))
    local r = ctrl.nodes["test.crashy.r"]
    assert.equals("unhealthy", r.health.state)
    assert.equals("run failed (restarting in 1s): internal error in test.crashy.r: attempt to index field 'missing' "
      .. "(a nil value)", r.health.message)
    -- an update that crashes keeps the previous arguments
    proc.write(file, 'test.crashy "r" { crash_in = "run" }\ntest.crashy "u" { crash_in = "update" }\n')
    assert.is_true(ctrl:load())
    local u = ctrl.nodes["test.crashy.u"]
    assert.equals("unhealthy", u.health.state)
    assert.equals("update: internal error in test.crashy.u: attempt to index field 'missing' (a nil value)",
      u.health.message)
    assert.equals("none", u.args.crash_in)
    ctrl:stop()
  end)
end)

describe("a receiver that crashes", function()
  it("is logged as an internal error of the receiver, without a path", function()
    local batches = require("helpers.batches")
    local ctrl, ok, problems = load([[
test.crashy "sink" { crash_in = "append" }
prometheus.relabel "r" { forward_to = { test.crashy.sink.receiver } }
]])
    assert.is_true(ok, problems and table.concat(problems, "\n"))
    local entries = logged(function()
      local b, keep = batches.from_text("a 1\n")
      ctrl.nodes["prometheus.relabel.r"].exports.receiver:append(b)
      assert.truthy(keep)
    end)
    local found
    for _, e in ipairs(entries) do
      if e.msg == "receiver failed" then
        found = e
      end
    end
    assert.truthy(found)
    assert.equals("error", found.level)
    assert.equals("internal error in test.crashy.sink: attempt to index field 'missing' (a nil value)", found.err)
    ctrl:stop()
  end)
end)

describe("moonwatch_component_health", function()
  it("is 1 for a healthy component and 0 otherwise, per component_id with its health_type", function()
    local metrics = require("moonwatch.metrics")
    local selfmetrics = require("moonwatch.selfmetrics")
    log.configure({ level = "error" })
    local ctrl, ok, _, file = load('test.consumer "good" {}\ntest.consumer "bad" { fail_run = true }\n')
    assert.is_true(ok)
    selfmetrics.attach_controller(ctrl)
    local body = metrics.default:expose()
    assert.matches('moonwatch_component_health{component_id="test.consumer.good",health_type="healthy"} 1', body, 1,
      true)
    assert.matches('moonwatch_component_health{component_id="test.consumer.bad",health_type="unhealthy"} 0', body, 1,
      true)
    assert.matches('moonwatch_component_controller_running_components{health_type="unhealthy"} 1', body, 1, true)
    -- a component removed by a reload has no series left; a changed health replaces the series
    proc.write(file, 'test.consumer "bad" {}\n')
    assert.is_true(ctrl:load())
    assert.truthy(loop.run_until(function()
      return ctrl.nodes["test.consumer.bad"].health.state == "healthy"
    end, 3))
    body = metrics.default:expose()
    assert.is_nil(body:find('component_id="test.consumer.good"', 1, true))
    assert.matches('moonwatch_component_health{component_id="test.consumer.bad",health_type="healthy"} 1', body, 1,
      true)
    assert.is_nil(body:find('component_id="test.consumer.bad",health_type="unhealthy"', 1, true))
    ctrl:stop()
  end)
end)

describe("prometheus.exporter.unix", function()
  it("says once at start which of node_exporter's default collectors it does not have", function()
    local ctrl
    local entries = logged(function()
      ctrl = load('prometheus.exporter.unix "h" { disable_collectors = { "bcache" } }\n'
        .. 'prometheus.exporter.unix "listed" { set_collectors = { "cpu" } }\n')
    end)
    local lines = {}
    for _, e in ipairs(entries) do
      if e.msg == "node_exporter default collectors that moonwatch does not have are left out" then
        lines[#lines + 1] = e
      end
    end
    assert.equals(1, #lines)
    assert.equals("info", lines[1].level)
    assert.equals("prometheus.exporter.unix.h", lines[1].component_id)
    assert.equals("bonding,btrfs,dmi,edac,fibrechannel,infiniband,ipvs,nvme,rapl,tapestats,zfs", lines[1].collectors)
    assert.is_nil(lines[1].collectors:find("bcache", 1, true)) -- disabled: not missed
    assert.is_nil(lines[1].collectors:find("cpu", 1, true)) -- implemented
    assert.is_nil(lines[1].collectors:find("thermal_zone", 1, true))
    ctrl:stop()
  end)
end)
