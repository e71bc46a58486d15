-- prometheus.scrape over HTTP against a test server (moonwatch's own HTTP server on
-- the same loop), TLS with a CA made by openssl, and the real node_exporter.
local controller = require("moonwatch.controller")
local http_server = require("moonwatch.http_server")
local scheduler = require("moonwatch.scheduler")
local loop = require("helpers.loop")
local proc = require("helpers.proc")
local log = require("moonwatch.log")

local SRC = os.getenv("MOONWATCH_SOURCE_DIR") or "."
local DIRS = { SRC .. "/tests/lua/fixtures/components", SRC .. "/stdlib" }
local tmp = proc.tmpdir()

local function sh(cmd)
  return proc.sh(cmd .. " 2>&1")
end

local gzipped = sh("printf 'gz_metric{a=\"1\"} 42\\n' | gzip -c")
local body_a = "metric_a{code=\"200\"} 1\nmetric_b 2\n# HELP h help\n# TYPE h counter\nh_total 3\n"
local changing = { "x 1\ny 2\n" }

local server = assert(http_server.listen("127.0.0.1:0"))
local base = server:addr()
server:route("GET", "/metrics", function()
  return 200, body_a, { ["Content-Type"] = "text/plain; version=0.0.4" }
end)
server:route("GET", "/meta2", function()
  return 200, "# HELP g other help\n# TYPE g gauge\ng 1\n"
end)
server:route("GET", "/changing", function()
  return 200, changing[1]
end)
server:route("GET", "/honor", function()
  return 200, 'a{job="app"} 1\nb 2\n'
end)
server:route("GET", "/gzip", function(req)
  assert(req.headers["accept-encoding"]:find("gzip"), "client did not ask for gzip")
  return 200, gzipped, { ["Content-Encoding"] = "gzip", ["Content-Type"] = "text/plain" }
end)
server:route("GET", "/slow", function()
  scheduler.sleep(2)
  return 200, "late 1\n"
end)
server:route("GET", "/big", function()
  return 200, string.rep("big_metric_with_a_long_name 1\n", 1000)
end)
server:route("GET", "/malformed", function()
  return 200, "ok 1\nbroken{ 2\n"
end)
server:route("GET", "/redirect", function()
  return 302, "", { Location = "http://" .. base .. "/metrics" }
end)
server:route("GET", "/basic", function(req)
  if req.headers["authorization"] ~= "Basic dXNlcjpwYXNz" then -- user:pass
    return 401, "unauthorized"
  end
  return 200, "auth_ok 1\n"
end)
server:route("GET", "/bearer", function(req)
  if req.headers["authorization"] ~= "Bearer t0ken" then
    return 401, "unauthorized"
  end
  return 200, "bearer_ok 1\n"
end)
server:route("GET", "/exemplars", function()
  return 200, table.concat({
    "# TYPE req counter",
    'req_total{path="/a"} 3 # {trace_id="4bf92f3577b34da6"} 0.25 1700000000.5',
    'req_total{path="/b"} 5 # {trace_id="00f067aa0ba902b7",span="x"} 7',
    'req_total{path="/drop"} 1 # {trace_id="dropped"} 1 1700000000',
    'req_total{path="/c"} 2 # {trace_id="' .. string.rep("t", 200) .. '"} 2 1700000000',
    "# EOF", "" }, "\n"), { ["Content-Type"] = "application/openmetrics-text; version=1.0.0" }
end)
server:route("GET", "/accept", function(req)
  return 200, "accept_seen 1\n", { ["X-Accept"] = req.headers["accept"] }
end)
-- Prometheus 3's quoted UTF-8 names, served whatever the Accept header asked for.
local utf8_accept
server:route("GET", "/utf8", function(req)
  utf8_accept = req.headers["accept"]
  return 200, table.concat({
    '# HELP "my.metric" A metric with a UTF-8 name.',
    '# TYPE "my.metric" gauge',
    '{"my.metric","my.label"="v",code="200"} 1',
    '{code="500","my.metric","my.label"="drop me"} 2',
    'legacy_name{"caf\xc3\xa9 \\"au lait\\""="x"} 3',
    "" }, "\n"), { ["Content-Type"] = "text/plain; version=1.0.0; escaping=allow-utf-8; charset=utf-8" }
end)
server:route("GET", "/headers", function(req)
  local t = tonumber(req.headers["x-prometheus-scrape-timeout-seconds"])
  return 200, string.format("timeout_header %s\nua_ok %d\n", t or -1,
    (req.headers["user-agent"] or ""):find("^moonwatch/") and 1 or 0)
end)

local function pipeline(scrape_args)
  local file = proc.write(tmp .. "/p" .. math.random(1e9) .. ".lua", string.format([[
test.recorder "r" {}
prometheus.scrape "s" {
  targets = %s,
  forward_to = { test.recorder.r.receiver },
  scrape_interval = "1s",
  scrape_timeout = "500ms",
  %s
}
]], scrape_args.targets, scrape_args.extra or ""))
  local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" })
  local ok, problems = ctrl:load(file)
  assert(ok, problems and table.concat(problems, "\n"))
  return ctrl, _G.test_recorders["test.recorder.r"], file
end

local function find(rec, name, pred)
  for _, s in ipairs(rec.samples) do
    if s.labels.__name__ == name and (not pred or pred(s)) then
      return s
    end
  end
end

-- Runs a pipeline until a sample named `want` (default "up") arrives. Waiting for a
-- metric rather than the first `up` lets a test ride out one slow scrape on a loaded machine.
local function scrape_once(targets, extra, want)
  local ctrl, rec = pipeline({ targets = targets, extra = extra })
  local ok = loop.run_until(function()
    return find(rec, want or "up")
  end, want and 10 or 5)
  if not ok then
    local info = ctrl.nodes["prometheus.scrape.s"].instance:debug_info().targets[1]
    error(string.format("no %s sample; last scrape error: %s", want or "up", info and info.last_error))
  end
  return ctrl, rec
end

-- The metadata moonwatch.metadata collects for the remote_write with id sink
-- (every target's if nil), as "type name|help|unit" sorted by name.
local function metadata_families(sink)
  local metadata = require("moonwatch.metadata")
  local set, out = metadata.new_set(), {}
  for i = 0, assert(metadata.collect(set, sink)) - 1 do
    local t, n, h, u = assert(set:get(i))
    out[#out + 1] = string.format("%d %s|%s|%s", t, n, h, u)
  end
  return out
end

-- The process's own metrics in text format.
local function metrics_text()
  return (require("moonwatch.metrics").default:expose("text/plain"))
end

local function target(path)
  return string.format('{{ __address__ = %q, __metrics_path__ = %q }}', base, path)
end

describe("prometheus.scrape over HTTP", function()
  setup(function()
    log.configure({ level = "error" })
  end)
  before_each(function()
    _G.test_recorders = {}
  end)

  it("scrapes a target: samples with job and instance, report series, up=1", function()
    local ctrl, rec = scrape_once(target("/metrics"))
    local a = find(rec, "metric_a")
    assert.same({ __name__ = "metric_a", code = "200", job = "prometheus.scrape.s", instance = base }, a.labels)
    assert.equals(1, a.value)
    assert.equals(1, find(rec, "up").value)
    assert.equals(3, find(rec, "scrape_samples_scraped").value)
    assert.equals(3, find(rec, "scrape_series_added").value)
    assert.truthy(find(rec, "h_total"))
    local info = ctrl.nodes["prometheus.scrape.s"].instance:debug_info().targets[1]
    assert.equals("up", info.health)
    assert.equals("http://" .. base .. "/metrics", info.url)
    ctrl:stop()
  end)

  it("asks for the scrape_protocols in order and sends the timeout and user agent", function()
    local ctrl, rec = scrape_once(target("/headers"))
    assert.equals(0.5, find(rec, "timeout_header").value)
    assert.equals(1, find(rec, "ua_ok").value)
    ctrl:stop()
    local mod = dofile(SRC .. "/stdlib/prometheus/scrape.lua")
    local all = { "OpenMetricsText1.0.0", "OpenMetricsText0.0.1", "PrometheusText1.0.0", "PrometheusText0.0.4" }
    assert.equals("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
      .. "application/openmetrics-text;version=0.0.1;q=0.5,"
      .. "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
      mod.accept_header(all, "allow-utf-8"))
    assert.equals("text/plain;version=0.0.4;q=0.6,text/plain;version=1.0.0;escaping=dots;q=0.5,*/*;q=0.4",
      mod.accept_header({ "PrometheusText0.0.4", "PrometheusText1.0.0" }, "dots"))
    -- the escaping follows the validation scheme unless set
    assert.equals("underscores", mod.escaping_scheme({ metric_name_validation_scheme = "legacy" }))
    assert.equals("allow-utf-8", mod.escaping_scheme({ metric_name_validation_scheme = "utf8" }))
    assert.equals("values", mod.escaping_scheme({ metric_name_validation_scheme = "utf8",
      metric_name_escaping_scheme = "values" }))
  end)

  it("validates names under metric_name_validation_scheme: legacy (the default) fails a UTF-8 body", function()
    local ctrl, rec = scrape_once(target("/utf8"))
    assert.equals(0, find(rec, "up").value)
    assert.is_nil(find(rec, "my.metric"))
    local info = ctrl.nodes["prometheus.scrape.s"].instance:debug_info().targets[1]
    assert.equals('line 3: metric name "my.metric" is not valid under the legacy validation scheme',
      info.last_error)
    ctrl:stop()
    -- Prometheus's default Accept header under the legacy scheme: names escaped with underscores
    assert.equals("application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,"
      .. "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=underscores;q=0.4,"
      .. "text/plain;version=0.0.4;q=0.3,*/*;q=0.2", utf8_accept)
  end)

  it("scrapes quoted UTF-8 names with metric_name_validation_scheme = \"utf8\"", function()
    local ctrl, rec = scrape_once(target("/utf8"), 'metric_name_validation_scheme = "utf8",', "my.metric")
    assert.equals(1, find(rec, "up").value)
    local m = find(rec, "my.metric", function(s)
      return s.labels.code == "200"
    end)
    assert.same({ __name__ = "my.metric", ["my.label"] = "v", code = "200", job = "prometheus.scrape.s",
      instance = base }, m.labels)
    assert.equals(2, find(rec, "my.metric", function(s)
      return s.labels.code == "500"
    end).value)
    assert.equals("x", find(rec, "legacy_name").labels['caf\xc3\xa9 "au lait"'])
    assert.equals(3, find(rec, "scrape_samples_scraped").value)
    assert.truthy(utf8_accept:find("text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4", 1, true))
    assert.same({ "2 my.metric|A metric with a UTF-8 name.|" }, metadata_families())
    ctrl:stop()
  end)

  it("refuses metric_name_escaping_scheme = \"allow-utf-8\" with the legacy scheme, and unknown schemes", function()
    local function problems(extra)
      local file = proc.write(tmp .. "/p" .. math.random(1e9) .. ".lua", string.format([[
prometheus.scrape "s" {
  targets = {},
  forward_to = {},
  %s
}
]], extra))
      local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" })
      local ok, probs = ctrl:load(file)
      assert.is_nil(ok)
      return table.concat(probs, "\n")
    end
    assert.matches('metric_name_escaping_scheme: cannot be "allow%-utf%-8" while metric_name_validation_scheme '
      .. 'is "legacy"', problems('metric_name_escaping_scheme = "allow-utf-8",'))
    assert.matches("metric_name_validation_scheme: must be one of legacy, utf8",
      problems('metric_name_validation_scheme = "UTF-8",'))
    assert.matches("metric_name_escaping_scheme: must be one of allow%-utf%-8, underscores, dots, values",
      problems('metric_name_validation_scheme = "utf8", metric_name_escaping_scheme = "dashes",'))
  end)

  it("carries UTF-8 names through prometheus.relabel to prometheus.echo", function()
    local out = tmp .. "/echo" .. math.random(1e9) .. ".txt"
    local file = proc.write(tmp .. "/p" .. math.random(1e9) .. ".lua", string.format([[
prometheus.echo "e" { file = %q }
prometheus.relabel "r" {
  forward_to = { prometheus.echo.e.receiver },
  rule = {
    { source_labels = { "code" }, regex = "500", action = "drop" },
    { source_labels = { "__name__" }, regex = "my[.](.*)", target_label = "suffix" },
    { regex = "job|instance", action = "labeldrop" },
  },
}
prometheus.scrape "s" {
  targets = %s,
  forward_to = { prometheus.relabel.r.receiver },
  scrape_interval = "1s",
  scrape_timeout = "500ms",
  metric_name_validation_scheme = "utf8",
}
]], out, target("/utf8")))
    local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" })
    local ok, probs = ctrl:load(file)
    assert(ok, probs and table.concat(probs, "\n"))
    local text = ""
    assert(loop.run_until(function()
      local f = io.open(out)
      text = f and f:read("*a") or ""
      if f then
        f:close()
      end
      return text:find("legacy_name", 1, true) ~= nil
    end, 10), "echo wrote: " .. text)
    ctrl:stop()
    assert.matches('{"my.metric",code="200","my.label"="v",suffix="metric"} 1 %d+\n', text)
    assert.matches('legacy_name{"caf\xc3\xa9 \\"au lait\\""="x"} 3 %d+\n', text)
    assert.is_nil(text:find("drop me", 1, true))
  end)

  it("inflates a gzip body", function()
    local ctrl, rec = scrape_once(target("/gzip"))
    assert.equals(42, find(rec, "gz_metric").value)
    ctrl:stop()
  end)

  it("fails a scrape past scrape_timeout with up=0", function()
    local ctrl, rec = scrape_once(target("/slow"))
    assert.equals(0, find(rec, "up").value)
    local info = ctrl.nodes["prometheus.scrape.s"].instance:debug_info().targets[1]
    assert.equals("down", info.health)
    assert.matches("context deadline exceeded", info.last_error)
    ctrl:stop()
  end)

  it("fails a body over body_size_limit and reports -1 as its size", function()
    local ctrl, rec = scrape_once(target("/big"), "body_size_limit = 1000, extra_metrics = true,")
    assert.equals(0, find(rec, "up").value)
    assert.equals(-1, find(rec, "scrape_body_size_bytes").value)
    assert.equals(1000, find(rec, "scrape_sample_limit").value + 1000)
    ctrl:stop()
  end)

  it("fails a malformed body with the line in the error, never a crash", function()
    local ctrl, rec = scrape_once(target("/malformed"))
    assert.equals(0, find(rec, "up").value)
    assert.is_nil(find(rec, "ok"))
    local info = ctrl.nodes["prometheus.scrape.s"].instance:debug_info().targets[1]
    assert.matches("^line 2: ", info.last_error)
    ctrl:stop()
  end)

  it("follows redirects, or not", function()
    local ctrl, rec = scrape_once(target("/redirect"))
    assert.equals(1, find(rec, "up").value)
    assert.truthy(find(rec, "metric_a"))
    ctrl:stop()
    _G.test_recorders = {}
    ctrl, rec = scrape_once(target("/redirect"), "follow_redirects = false,")
    assert.equals(0, find(rec, "up").value)
    assert.matches("HTTP status 302", ctrl.nodes["prometheus.scrape.s"].instance:debug_info().targets[1].last_error)
    ctrl:stop()
  end)

  it("keeps OpenMetrics exemplars through prometheus.relabel to prometheus.echo", function()
    local out = tmp .. "/echo" .. math.random(1e9) .. ".om"
    local file = proc.write(tmp .. "/p" .. math.random(1e9) .. ".lua", string.format([[
prometheus.echo "e" { format = "openmetrics", file = %q }
prometheus.relabel "r" {
  forward_to = { prometheus.echo.e.receiver },
  rule = { { source_labels = { "path" }, regex = "/drop", action = "drop" } },
}
prometheus.scrape "s" {
  targets = %s,
  forward_to = { prometheus.relabel.r.receiver },
  scrape_interval = "1s",
  scrape_timeout = "500ms",
}
]], out, target("/exemplars")))
    local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" })
    local ok, problems = ctrl:load(file)
    assert(ok, problems and table.concat(problems, "\n"))
    local text = ""
    assert(loop.run_until(function()
      local f = io.open(out)
      text = f and f:read("*a") or ""
      if f then
        f:close()
      end
      return text:find('req_total{instance="[^"]*",job="[^"]*",path="/c"}')
    end, 10), "no exemplar scrape echoed; got:\n" .. text)
    ctrl:stop()
    -- with its own timestamp; without one, the scrape's (the sample's) timestamp
    assert.matches('req_total{instance="[^"]*",job="[^"]*",path="/a"} 3.0 %d+%.%d+ # {trace_id="4bf92f3577b34da6"} 0.25 '
      .. "1700000000.500\n", text)
    local sample_ts, ex_ts = text:match('path="/b"} 5.0 (%d+%.%d+) # {span="x",trace_id="00f067aa0ba902b7"} 7.0 (%d+%.%d+)\n')
    assert.is_not_nil(sample_ts, text)
    assert.equals(sample_ts, ex_ts)
    -- dropped by relabel with its sample; an exemplar over 128 code points is dropped, its sample kept
    assert.is_nil(text:find("dropped", 1, true))
    assert.matches('path="/c"} 2.0 %d+%.%d+\n', text)
    -- the report series have none
    assert.matches('\nup{instance="[^"]*",job="[^"]*"} 1.0 %d+%.%d+\n', text)
  end)

  it("authenticates with basic_auth and bearer_token", function()
    local ctrl, rec = scrape_once(target("/basic"), 'basic_auth = { username = "user", password = "pass" },')
    assert.equals(1, find(rec, "auth_ok").value)
    ctrl:stop()
    _G.test_recorders = {}
    ctrl, rec = scrape_once(target("/basic"))
    assert.equals(0, find(rec, "up").value)
    assert.matches("HTTP status 401", ctrl.nodes["prometheus.scrape.s"].instance:debug_info().targets[1].last_error)
    ctrl:stop()
    _G.test_recorders = {}
    ctrl, rec = scrape_once(target("/bearer"), 'bearer_token = "t0ken",')
    assert.equals(1, find(rec, "bearer_ok").value)
    ctrl:stop()
  end)

  it("reports 404 and connection refused as up=0", function()
    local ctrl, rec = scrape_once(target("/nope"))
    assert.equals(0, find(rec, "up").value)
    assert.matches("HTTP status 404", ctrl.nodes["prometheus.scrape.s"].instance:debug_info().targets[1].last_error)
    ctrl:stop()
    _G.test_recorders = {}
    ctrl, rec = scrape_once('{{ __address__ = "127.0.0.1:1" }}')
    assert.equals(0, find(rec, "up").value)
    ctrl:stop()
  end)

  it("marks a series that disappears stale once, and writes no marker when the component stops", function()
    changing[1] = "x 1\ny 2\n"
    local ctrl, rec = pipeline({ targets = target("/changing") })
    assert(loop.run_until(function()
      return find(rec, "y")
    end, 5))
    changing[1] = "x 1\n"
    assert(loop.run_until(function()
      return find(rec, "y", function(s)
        return s.stale
      end)
    end, 5), "no staleness marker for y")
    local before = #rec.samples
    ctrl:stop()
    -- as Prometheus at shutdown: a restart carries the series on
    assert.equals(before, #rec.samples)
    local n = 0
    for _, s in ipairs(rec.samples) do
      if s.stale then
        assert.equals("y", s.labels.__name__)
        n = n + 1
      end
    end
    assert.equals(1, n)
    -- and nothing later either (no end-of-run staleness left running)
    loop.run_for(2.5)
    assert.equals(before, #rec.samples)
  end)

  -- Two targets (instances "kept" and "gone") at 1 s; `edit` rewrites the pipeline's targets.
  local function two_targets()
    changing[1] = "x 1\ny 2\n"
    local both = string.format('{{ __address__ = %q, __metrics_path__ = "/metrics", instance = "kept" }, '
      .. '{ __address__ = %q, __metrics_path__ = "/changing", instance = "gone" }}', base, base)
    local ctrl, rec, file = pipeline({ targets = both })
    local src = io.open(file):read("*a")
    local function edit(only_kept)
      proc.write(file, only_kept and src:gsub(', { __address__ = "[^"]*", __metrics_path__ = "/changing", '
        .. 'instance = "gone" }', "") or src)
      assert(ctrl:load())
    end
    assert(loop.run_until(function()
      return find(rec, "up", function(s)
        return s.labels.instance == "kept"
      end) and find(rec, "x")
    end, 5))
    return ctrl, rec, edit
  end

  local function stale_of(rec, instance)
    local out = {}
    for _, s in ipairs(rec.samples) do
      if s.stale and s.labels.instance == instance then
        out[#out + 1] = s
      end
    end
    return out
  end

  it("marks a removed target's series stale two intervals and 10% later, at its next slot", function()
    local ctrl, rec, edit = two_targets()
    local node = ctrl.nodes["prometheus.scrape.s"]
    local before = require("moonwatch.ffi").time_now()
    edit(true)
    local removed = require("moonwatch.ffi").time_now()
    local last_up -- the removed target's last scrape
    for _, s in ipairs(rec.samples) do
      if s.labels.__name__ == "up" and s.labels.instance == "gone" then
        last_up = s.ts
      end
    end
    assert.equals(1, #node.instance:debug_info().targets)
    -- not within the first 1.1 intervals
    loop.run_for(1.0)
    assert.same({}, stale_of(rec, "gone"))
    assert(loop.run_until(function()
      return #stale_of(rec, "gone") > 0
    end, 3), "no staleness markers for the removed target")
    local stale = stale_of(rec, "gone")
    local names = {}
    for _, s in ipairs(stale) do
      names[#names + 1] = s.labels.__name__
      -- timestamped at the slot after the removal, where its next scrape would have been
      assert.equals(stale[1].ts, s.ts)
      assert.is_true(s.ts >= math.floor(before * 1000) and s.ts <= removed * 1000 + 1000,
        string.format("marker at %d, removed between %.3f and %.3f", s.ts, before, removed))
      local off = (s.ts - last_up) % 1000
      assert.is_true(off < 60 or off > 940, "marker " .. (s.ts - last_up) .. " ms after the last scrape")
      -- written one interval and 10% after that slot
      local after = s.at - s.ts / 1000
      assert.is_true(after >= 1.09 and after < 1.6, "written " .. after .. " s after its timestamp")
    end
    table.sort(names)
    assert.same({ "scrape_duration_seconds", "scrape_samples_post_metric_relabeling", "scrape_samples_scraped",
      "scrape_series_added", "up", "x", "y" }, names)
    -- once, and none for the target that stays
    loop.run_for(1.5)
    assert.equals(#names, #stale_of(rec, "gone"))
    assert.same({}, stale_of(rec, "kept"))
    ctrl:stop()
  end)

  it("writes no marker for a removed target that comes back before they are due, and keeps its state", function()
    local ctrl, rec, edit = two_targets()
    local loops = ctrl.nodes["prometheus.scrape.s"].instance.loops
    local before
    for _, l in pairs(loops) do
      if l.st.labels.instance == "gone" then
        before = l
      end
    end
    edit(true)
    loop.run_for(0.5)
    edit(false)
    loop.run_for(3)
    assert.same({}, stale_of(rec, "gone"))
    local after
    for _, l in pairs(loops) do
      if l.st.labels.instance == "gone" then
        after = l
      end
    end
    assert.equals(before, after)
    -- it goes on being scraped
    local n = #rec.samples
    assert(loop.run_until(function()
      return find(rec, "x", function(s)
        return s.labels.instance == "gone" and s.ts > rec.samples[n].ts
      end)
    end, 3))
    ctrl:stop()
  end)

  it("applies a new honor_labels in place: only the series whose labels change go stale", function()
    local ctrl, rec, file = pipeline({ targets = target("/honor") })
    assert(loop.run_until(function()
      return find(rec, "a")
    end, 5))
    assert.equals("app", find(rec, "a").labels.exported_job)
    proc.write(file, io.open(file):read("*a"):gsub("  forward_to", "  honor_labels = true,\n  forward_to"))
    assert(ctrl:load())
    assert(loop.run_until(function()
      return find(rec, "a", function(s)
        return s.labels.job == "app"
      end)
    end, 5))
    local stale = {}
    for _, s in ipairs(rec.samples) do
      if s.stale then
        stale[#stale + 1] = s
      end
    end
    assert.equals(1, #stale)
    assert.same({ __name__ = "a", exported_job = "app", job = "prometheus.scrape.s", instance = base }, stale[1].labels)
    ctrl:stop()
  end)
  it("keeps a surviving target's state when targets change", function()
    local ctrl, rec, file = pipeline({ targets = target("/metrics") })
    assert(loop.run_until(function()
      return find(rec, "up")
    end, 5))
    local node = ctrl.nodes["prometheus.scrape.s"]
    local loop_before = next(node.instance.loops)
    local src = io.open(file):read("*a")
    src = src:gsub("targets = ", 'targets = concat({{ __address__ = "127.0.0.1:1" }}, ')
    src = src:gsub("%}%},\n  forward_to", "}}),\n  forward_to")
    proc.write(file, src)
    assert(ctrl:load())
    assert.truthy(node.instance.loops[loop_before])
    local n = 0
    for _ in pairs(node.instance.loops) do
      n = n + 1
    end
    assert.equals(2, n)
    ctrl:stop()
  end)

  it("lends its targets' metadata to remote_write (moonwatch.metadata) and forgets removed targets", function()
    local metadata = require("moonwatch.metadata")
    local before = metadata.targets()
    local ctrl, rec, file = pipeline({ targets = target("/metrics") })
    assert(loop.run_until(function()
      return find(rec, "up")
    end, 5))
    assert.equals(before + 1, metadata.targets())
    assert.same({ "1 h|help|" }, metadata_families())
    -- the target goes, another comes: only the new one's (no) metadata is left
    local src = io.open(file):read("*a"):gsub('"/metrics"', '"/changing"')
    proc.write(file, src)
    rec.samples = {}
    assert(ctrl:load())
    assert(loop.run_until(function()
      return find(rec, "x")
    end, 5))
    assert.equals(before + 1, metadata.targets())
    assert.same({}, metadata_families())
    ctrl:stop()
    assert.equals(before, metadata.targets())
  end)

  it("routes metadata as the samples go: a remote_write gets only the targets that reach it", function()
    -- a -> relabel -> rw "one"; b -> rw "two" and the recorder; the relabel's drop
    -- rule drops samples, not metadata (as Alloy: it relabels series, not families)
    local file = proc.write(tmp .. "/route" .. math.random(1e9) .. ".lua", string.format([[
test.recorder "r" {}
prometheus.scrape "a" {
  targets = {{ __address__ = %q, __metrics_path__ = "/metrics" }},
  forward_to = { prometheus.relabel.k.receiver },
  scrape_interval = "1s",
  scrape_timeout = "500ms",
}
prometheus.relabel "k" {
  forward_to = { prometheus.remote_write.one.receiver },
  rule = {{ source_labels = { "__name__" }, regex = "nothing", action = "keep" }},
}
prometheus.scrape "b" {
  targets = {{ __address__ = %q, __metrics_path__ = "/meta2" }},
  forward_to = { test.recorder.r.receiver, prometheus.remote_write.two.receiver },
  scrape_interval = "1s",
  scrape_timeout = "500ms",
}
prometheus.remote_write "one" {
  endpoint = { url = "http://127.0.0.1:1/one", metadata_config = { send = false } },
}
prometheus.remote_write "two" {
  endpoint = { url = "http://127.0.0.1:1/two", metadata_config = { send = false } },
}
]], base, base))
    local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data-route" })
    local ok, problems = ctrl:load(file)
    assert(ok, problems and table.concat(problems, "\n"))
    assert(loop.run_until(function()
      return #metadata_families("prometheus.remote_write.one") == 1 and #metadata_families("prometheus.remote_write.two") == 1
    end, 5))
    assert.same({ "1 h|help|" }, metadata_families("prometheus.remote_write.one"))
    assert.same({ "2 g|other help|" }, metadata_families("prometheus.remote_write.two"))
    -- a reload that sends a straight to "two": routing follows the current forward_to
    local src = io.open(file):read("*a"):gsub("forward_to = { prometheus.relabel.k.receiver }",
      "forward_to = { prometheus.remote_write.two.receiver }")
    proc.write(file, src)
    assert(ctrl:load())
    assert.same({}, metadata_families("prometheus.remote_write.one"))
    assert.same({ "2 g|other help|", "1 h|help|" }, metadata_families("prometheus.remote_write.two"))
    ctrl:stop()
  end)

  it("writes up 0 and every report series when a label limit fails the scrape", function()
    for _, limit in ipairs({ "label_limit = 2,", "label_name_length_limit = 3,", "label_value_length_limit = 3," }) do
      _G.test_recorders = {}
      local ctrl, rec = scrape_once(target("/metrics"), limit .. " extra_metrics = true,")
      local up = find(rec, "up")
      assert.equals(0, up.value, limit)
      assert.same({ __name__ = "up", job = "prometheus.scrape.s", instance = base }, up.labels)
      for _, name in ipairs({ "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
        "scrape_series_added", "scrape_timeout_seconds", "scrape_sample_limit", "scrape_body_size_bytes" }) do
        assert.truthy(find(rec, name), name .. " with " .. limit)
      end
      assert.is_nil(find(rec, "metric_a"))
      local info = ctrl.nodes["prometheus.scrape.s"].instance:debug_info().targets[1]
      assert.equals("down", info.health)
      assert.matches(limit:match("^(%S+)") .. " exceeded", info.last_error, 1, true)
      assert.equals("healthy", ctrl.nodes["prometheus.scrape.s"].health.state)
      ctrl:stop()
    end
    local text = metrics_text()
    assert.matches('\nprometheus_target_scrape_pool_exceeded_label_limits_total{component_id="prometheus.scrape.s"} %d',
      text)
  end)

  it("fails a scrape whose exporter raises an error with up 0, and scrapes on", function()
    local inmemory = require("moonwatch.inmemory")
    inmemory.register("test.boom", function()
      error("boom")
    end)
    local ctrl, rec = pipeline({ targets = string.format('{{ __address__ = %q, __metrics_path__ = %q }}',
      inmemory.ADDRESS, inmemory.path("test.boom")) })
    assert(loop.run_until(function()
      local n = 0
      for _, s in ipairs(rec.samples) do
        n = n + (s.labels.__name__ == "up" and 1 or 0)
      end
      return n >= 2
    end, 5), "two scrapes")
    inmemory.unregister("test.boom")
    assert.equals(0, find(rec, "up").value)
    local info = ctrl.nodes["prometheus.scrape.s"].instance:debug_info().targets[1]
    assert.equals("internal error in prometheus.scrape: boom", info.last_error)
    ctrl:stop()
  end)

  it("fails every scrape over target_limit with up 0 on each target, not the component's health", function()
    local ctrl, rec = pipeline({ targets = string.format('{{ __address__ = %q, instance = "a" }, '
      .. '{ __address__ = %q, instance = "b" }}', base, base), extra = "target_limit = 1," })
    assert(loop.run_until(function()
      return find(rec, "up", function(s)
        return s.labels.instance == "a"
      end) and find(rec, "up", function(s)
        return s.labels.instance == "b"
      end)
    end, 5))
    for _, s in ipairs(rec.samples) do
      assert.is_true(s.labels.__name__ ~= "metric_a", "a target over the limit is not scraped")
      if s.labels.__name__ == "up" then
        assert.equals(0, s.value)
      end
    end
    local node = ctrl.nodes["prometheus.scrape.s"]
    assert.equals("healthy", node.health.state)
    local info = node.instance:debug_info()
    assert.equals(2, #info.targets)
    for _, t in ipairs(info.targets) do
      assert.equals("down", t.health)
      assert.equals("target_limit exceeded (number of targets: 2, limit: 1)", t.last_error)
    end
    assert.matches('\nprometheus_target_scrape_pool_exceeded_target_limit_total{component_id="prometheus.scrape.s"} 1\n',
      metrics_text())
    ctrl:stop()
  end)

  it("reports a target without an address in debug info, the log and metrics, not the component's health", function()
    local ctrl, rec = pipeline({ targets = string.format('{{ foo = "bar" }, { __address__ = %q }}', base) })
    assert(loop.run_until(function()
      return find(rec, "up")
    end, 5))
    assert.equals(1, find(rec, "up").value)
    local node = ctrl.nodes["prometheus.scrape.s"]
    assert.equals("healthy", node.health.state)
    assert.same({ "target 1: no address" }, node.instance:debug_info().target_errors)
    assert.matches('\nprometheus_target_sync_failed_total{component_id="prometheus.scrape.s",'
      .. 'scrape_job="prometheus.scrape.s"} 1\n', metrics_text())
    ctrl:stop()
  end)

  it("scrapes over TLS with a CA made by openssl, and refuses without it", function()
    local dir = tmp .. "/tls"
    sh("mkdir -p " .. dir)
    sh(string.format("(cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 "
      .. "-subj /CN=test-ca && openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost "
      .. "&& printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext && openssl x509 -req -in srv.csr -CA ca.pem "
      .. "-CAkey ca.key -CAcreateserial -out srv.pem -days 1 -extfile ext && printf 'tls_metric 7\\n' > metrics) "
      .. ">/dev/null 2>&1", dir))
    local port, pid = proc.start_server("cd " .. dir .. " && exec openssl s_server -quiet -WWW -accept 127.0.0.1:%d"
      .. " -cert srv.pem -key srv.key", "curl -sk -o /dev/null -w '%%{http_code}' https://127.0.0.1:%d/metrics"
      .. " | grep -q 200 && echo ok")
    local addr = "127.0.0.1:" .. port
    local ok, err = pcall(function()
      local ctrl, rec = scrape_once(string.format('{{ __address__ = %q, __scheme__ = "https" }}', addr),
        string.format('tls_config = { ca_file = %q },', dir .. "/ca.pem"), "tls_metric")
      assert.equals(7, find(rec, "tls_metric").value)
      ctrl:stop()
      _G.test_recorders = {}
      ctrl, rec = scrape_once(string.format('{{ __address__ = %q, __scheme__ = "https" }}', addr))
      assert.equals(0, find(rec, "up").value)
      assert.matches("certificate", ctrl.nodes["prometheus.scrape.s"].instance:debug_info().targets[1].last_error)
      ctrl:stop()
      _G.test_recorders = {}
      ctrl, rec = scrape_once(string.format('{{ __address__ = %q, __scheme__ = "https" }}', addr),
        "tls_config = { insecure_skip_verify = true },", "tls_metric")
      assert.equals(7, find(rec, "tls_metric").value)
      ctrl:stop()
    end)
    os.execute("kill " .. pid .. " 2>/dev/null")
    assert(ok, err)
  end)

  it("scrapes the real node_exporter", function()
    local port, pid = proc.start_server("exec prometheus-node-exporter --web.listen-address=127.0.0.1:%d",
      "curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/metrics | grep -q 200 && echo ok")
    local ok, err = pcall(function()
      local ctrl, rec = scrape_once(string.format('{{ __address__ = "127.0.0.1:%d" }}', port))
      assert.equals(1, find(rec, "up").value)
      local scraped = find(rec, "scrape_samples_scraped").value
      assert.is_true(scraped > 200)
      assert.truthy(find(rec, "node_boot_time_seconds"))
      assert.truthy(find(rec, "node_cpu_seconds_total", function(s)
        return s.labels.mode == "idle" and s.labels.cpu == "0"
      end))
      ctrl:stop()
    end)
    os.execute("kill " .. pid .. " 2>/dev/null")
    assert(ok, err)
  end)
end)
