-- End-to-end: the tracing block and the OTLP exporters through `moonwatch run`, with the
-- meta-monitoring guide's pipeline (`tracing { sampling_fraction, write_to =
-- [otelcol.exporter.otlp.x.input] }`, written in Lua), against the suite's strict OTLP
-- receivers: tests/e2e/fixtures/otlp_grpc_receiver.c (OTLP/gRPC on libnghttp2) and
-- otlp_receiver.lua (OTLP/HTTP; also the scrape target that records traceparent headers). Both
-- decode with the protobuf-c code of the official opentelemetry-proto definitions.
local proc = require("helpers.proc")
local cjson = require("cjson")

local tmp = proc.tmpdir()
local GRPC_BIN = (os.getenv("MOONWATCH_BUILD_DIR") or "build") .. "/tests/otlp_grpc_receiver"
local EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
local pids, handles = {}, {}

-- Starts the gRPC receiver (the first fail_n exports answered with grpc-status code); returns
-- its port and the path of its JSON lines.
local function grpc_receiver(fail_n, code)
  local out = string.format("%s/grpc-%d.jsonl", tmp, math.random(1, 1e9))
  local port, pid = proc.start_server(string.format("%s %%d %s %d %d", GRPC_BIN, out, fail_n or 0, code or 14),
    "curl -s --http2-prior-knowledge -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/probe | grep -q 415 && echo ok")
  pids[#pids + 1] = pid
  return port, out
end

-- The export calls the gRPC receiver got (JSON lines; the readiness probes left out). Only
-- whole lines: the receiver may be writing the last one (a long line takes several writes).
local function grpc_calls(out)
  local calls = {}
  for line in (proc.read_file(out) or ""):gmatch("([^\n]+)\n") do
    local c = cjson.decode(line)
    if c.path == EXPORT then
      calls[#calls + 1] = c
    end
  end
  return calls
end

-- Every span of the accepted calls, each with its resource.
local function grpc_spans(out)
  local spans = {}
  for _, c in ipairs(grpc_calls(out)) do
    if c.request ~= cjson.null then
      for _, rs in ipairs(c.request.resource_spans) do
        for _, ss in ipairs(rs.scope_spans) do
          for _, s in ipairs(ss.spans) do
            s.resource, s.scope = rs.resource, ss.scope
            spans[#spans + 1] = s
          end
        end
      end
    end
  end
  return spans
end

local function http_receiver()
  local port = proc.free_port()
  proc.spawn(string.format("%s lua %s/tests/e2e/fixtures/otlp_receiver.lua %d", proc.quote(proc.bin), proc.source,
    port), tmp .. "/otlp-receiver-" .. port .. ".log")
  proc.wait_http("http://127.0.0.1:" .. port .. "/ready")
  return port
end

local function get(port, what)
  local status, body = proc.http("GET", "http://127.0.0.1:" .. port .. "/" .. what)
  assert(status == 200, "receiver answered " .. tostring(status))
  return cjson.decode(body)[what]
end

local function by_name(spans, name)
  local out = {}
  for _, s in ipairs(spans) do
    if s.name == name then
      out[#out + 1] = s
    end
  end
  return out
end

local function run(name, text)
  local file = proc.write(tmp .. "/" .. name .. ".lua", text)
  local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-" .. name })
  handles[#handles + 1] = h -- killed at teardown when a test fails before its h.kill()
  return h
end

local function health(h, id)
  local _, body = proc.http("GET", h.base .. "/api/v0/components/" .. id)
  return cjson.decode(body).health
end

describe("tracing", function()
  teardown(function()
    for _, h in ipairs(handles) do
      h.kill()
    end
    proc.kill_spawned()
    for _, pid in ipairs(pids) do
      os.execute("kill " .. pid .. " 2>/dev/null")
    end
  end)

  it("sends moonwatch's spans over OTLP/gRPC: resource attributes, loads with their evaluations, scrapes whose"
    .. " span is the traceparent the target got, remote_write requests, WAL truncations", function()
    local gport, out = grpc_receiver()
    local tport = http_receiver()
    local h = run("meta", string.format([[
tracing {
  sampling_fraction = 1,
  send_traceparent  = true,
  write_to          = { otelcol.exporter.otlp.default.input },
}

otelcol.exporter.otlp "default" {
  client = {
    endpoint = "127.0.0.1:%d",
    tls      = { insecure = true },
  },
}

prometheus.scrape "app" {
  targets         = { { __address__ = "127.0.0.1:%d" } },
  forward_to      = { prometheus.remote_write.default.receiver },
  scrape_interval = "1s",
  scrape_timeout  = "1s",
}

-- the target has no remote-write receiver: its 404 is a rejected request, with its span
prometheus.remote_write "default" {
  endpoint = { url = "http://127.0.0.1:%d/api/v1/write", queue_config = { batch_send_deadline = "100ms" } },
  wal      = { truncate_frequency = "1s" },
}

-- moonwatch's own log lines to a loki.write, whose pushes the target refuses too (404)
logging { write_to = { loki.write.l.receiver } }
loki.write "l" {
  endpoint = { url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "100ms" },
}
]], gport, tport, tport, tport))
    local spans = proc.wait_for(function()
      local s = grpc_spans(out)
      return #by_name(s, "prometheus.scrape") >= 2 and #by_name(s, "prometheus.remote_write") >= 1
        and #by_name(s, "prometheus.remote_write.wal_truncate") >= 1 and #by_name(s, "loki.write") >= 1 and s
    end, 20, "scrape, remote_write, loki.write and WAL spans")
    h.kill()

    -- every call as gRPC requires, and one resource for every span
    for _, c in ipairs(grpc_calls(out)) do
      assert.equals("application/grpc", c.content_type)
      assert.equals("trailers", c.te)
      assert.equals("gzip", c.grpc_encoding)
      assert.equals(0, c.grpc_status)
    end
    local version = proc.sh(proc.quote(proc.bin) .. " version"):match("moonwatch[^%d]*([%d%.]+)")
    local instance = spans[1].resource["service.instance.id"]
    assert.truthy(instance:match("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$"), instance)
    for _, s in ipairs(spans) do
      assert.equals("moonwatch", s.resource["service.name"])
      assert.equals(version, s.resource["service.version"])
      assert.equals(instance, s.resource["service.instance.id"])
      assert.equals("moonwatch", s.scope.name)
      assert.equals(32, #s.trace_id)
      assert.equals(16, #s.span_id)
    end

    -- the load: a GraphEvaluate root, an EvaluateNode child per component
    local roots = by_name(spans, "GraphEvaluate")
    assert.equals(1, #roots)
    local root = roots[1]
    assert.equals("", root.parent_span_id)
    local nodes = {}
    for _, s in ipairs(by_name(spans, "EvaluateNode")) do
      assert.equals(root.trace_id, s.trace_id)
      assert.equals(root.span_id, s.parent_span_id)
      assert.is_true(s.start >= root.start and s["end"] <= root["end"])
      nodes[s.attributes.node_id] = true
    end
    assert.same({ ["otelcol.exporter.otlp.default"] = true, ["prometheus.scrape.app"] = true,
      ["prometheus.remote_write.default"] = true, ["loki.write.l"] = true }, nodes)

    -- each scrape: a root client span whose ids are the traceparent the target received
    local got = {}
    for _, tp in ipairs(get(tport, "traceparents")) do
      got[tp] = true
    end
    for _, s in ipairs(by_name(spans, "prometheus.scrape")) do
      assert.equals("", s.parent_span_id)
      assert.equals(3, s.kind)
      assert.equals("prometheus.scrape.app", s.attributes.component_id)
      assert.equals(200, s.attributes["http.response.status_code"])
      assert.equals(1, s.attributes.up)
      assert.equals(string.format("http://127.0.0.1:%d/metrics", tport), s.attributes["url.full"])
      assert.is_true(got["00-" .. s.trace_id .. "-" .. s.span_id .. "-01"], "traceparent of span " .. s.span_id)
    end

    -- remote_write requests: endpoint, samples, HTTP status, outcome; rejected = status Error
    local rw = by_name(spans, "prometheus.remote_write")[1]
    assert.equals("prometheus.remote_write.default", rw.attributes.component_id)
    assert.is_true(rw.attributes.samples > 0)
    assert.equals(0, rw.attributes.retries)
    assert.equals(404, rw.attributes["http.response.status_code"])
    assert.equals("rejected", rw.attributes.outcome)
    assert.truthy(rw.attributes.endpoint)
    assert.equals(2, rw.status_code)
    assert.truthy(rw.status_message:find("404", 1, true))
    local lw = by_name(spans, "loki.write")[1]
    assert.equals("loki.write.l", lw.attributes.component_id)
    assert.is_true(lw.attributes.entries > 0)
    assert.equals(404, lw.attributes["http.response.status_code"])
    assert.equals("rejected", lw.attributes.outcome)
    assert.equals(2, lw.status_code)
    -- the WAL truncation (with its checkpoint)
    local wt = by_name(spans, "prometheus.remote_write.wal_truncate")[1]
    assert.equals("prometheus.remote_write.default", wt.attributes.component_id)
    assert.equals(0, wt.status_code)
  end)

  it("sampling_fraction = 0 makes and sends no span, and scrapes carry no traceparent", function()
    local gport, out = grpc_receiver()
    local tport = http_receiver()
    local h = run("zero", string.format([[
tracing {
  sampling_fraction = 0,
  send_traceparent  = true,
  write_to          = { otelcol.exporter.otlp.default.input },
}
otelcol.exporter.otlp "default" {
  client = { endpoint = "127.0.0.1:%d", tls = { insecure = true } },
}
prometheus.scrape "app" {
  targets = { { __address__ = "127.0.0.1:%d" } }, forward_to = {},
  scrape_interval = "200ms", scrape_timeout = "200ms",
}
]], gport, tport))
    proc.wait_for(function()
      return #get(tport, "traceparents") >= 5
    end, 10, "5 scrapes")
    os.execute("sleep 1.5") -- longer than the tracing flush period
    assert.equals(0, proc.metric(h, "otelcol_exporter_sent_spans_total"))
    h.kill()
    assert.same({}, grpc_calls(out))
    for _, tp in ipairs(get(tport, "traceparents")) do
      assert.equals("", tp)
    end
  end)

  it("retries an endpoint that answers UNAVAILABLE, then delivers; one that keeps failing is reported unhealthy"
    .. " and its spans counted as failed", function()
    local gport, out = grpc_receiver(3, 14)
    local h = run("retry", string.format([[
tracing { sampling_fraction = 1, write_to = { otelcol.exporter.otlp.default.input } }
otelcol.exporter.otlp "default" {
  client           = { endpoint = "127.0.0.1:%d", tls = { insecure = true } },
  retry_on_failure = { initial_interval = "50ms", max_interval = "100ms" },
}
]], gport))
    proc.wait_for(function()
      return proc.metric(h, "otelcol_exporter_sent_spans_total") > 0
    end, 10, "spans sent after the retries")
    local codes = {}
    for _, c in ipairs(grpc_calls(out)) do
      codes[#codes + 1] = c.grpc_status
    end
    assert.same({ 14, 14, 14, 0 }, { codes[1], codes[2], codes[3], codes[4] })
    assert.equals(0, proc.metric(h, "otelcol_exporter_send_failed_spans_total"))
    -- three failures in a row made it unhealthy; the delivery after them made it healthy again
    local back = health(h, "otelcol.exporter.otlp.default")
    assert.equals("healthy", back.state)
    assert.equals("sending again", back.message)
    h.kill()

    -- an endpoint that keeps failing: retried until max_elapsed_time, then dropped and counted
    local bport = grpc_receiver(1e9, 14)
    h = run("down", string.format([[
tracing { sampling_fraction = 1, write_to = { otelcol.exporter.otlp.default.input } }
otelcol.exporter.otlp "default" {
  client           = { endpoint = "127.0.0.1:%d", tls = { insecure = true } },
  retry_on_failure = { initial_interval = "50ms", max_interval = "100ms", max_elapsed_time = "1s" },
}
prometheus.exporter.self "s" {}
prometheus.scrape "app" {
  targets = prometheus.exporter.self.s.targets, forward_to = {},
  scrape_interval = "200ms", scrape_timeout = "200ms",
}
]], bport))
    proc.wait_for(function()
      return proc.metric(h, "otelcol_exporter_send_failed_spans_total") > 0
    end, 15, "failed spans counted")
    local hl = health(h, "otelcol.exporter.otlp.default")
    assert.equals("unhealthy", hl.state)
    assert.truthy(hl.message:find("UNAVAILABLE", 1, true), hl.message)
    assert.equals(0, proc.metric(h, "otelcol_exporter_sent_spans_total"))
    h.kill()
    assert.truthy(h.read():find("Exporting failed. Dropping data.", 1, true))
  end)

  it("drops at once what the endpoint refuses for good (INVALID_ARGUMENT), without retrying", function()
    local gport, out = grpc_receiver(1e9, 3)
    local h = run("invalid", string.format([[
tracing { sampling_fraction = 1, write_to = { otelcol.exporter.otlp.default.input } }
otelcol.exporter.otlp "default" {
  client           = { endpoint = "127.0.0.1:%d", tls = { insecure = true } },
  retry_on_failure = { initial_interval = "50ms" },
}
]], gport))
    local failed = proc.wait_for(function()
      local n = proc.metric(h, "otelcol_exporter_send_failed_spans_total")
      return n > 0 and n
    end, 10, "failed spans counted")
    os.execute("sleep 0.5")
    h.kill()
    -- one batch (the load's spans), one call
    assert.equals(1, #grpc_calls(out))
    assert.is_true(failed > 0)
  end)

  it("sends over OTLP/HTTP: protobuf or JSON, gzip, headers (secrets never shown)", function()
    local port = http_receiver()
    local h = run("http", string.format([[
tracing { sampling_fraction = 1, write_to = { otelcol.exporter.otlphttp.p.input, otelcol.exporter.otlphttp.j.input } }
otelcol.exporter.otlphttp "p" {
  client = { endpoint = "http://127.0.0.1:%d", headers = { ["X-Custom"] = "s3cr3t-value" } },
}
otelcol.exporter.otlphttp "j" {
  client          = { endpoint = "http://unused.invalid:1", compression = "none" },
  traces_endpoint = "http://127.0.0.1:%d/v1/traces",
  encoding        = "json",
}
]], port, port))
    local reqs = proc.wait_for(function()
      local r = get(port, "requests")
      return #r >= 2 and r
    end, 10, "two export requests")
    local _, detail = proc.http("GET", h.base .. "/api/v0/components/otelcol.exporter.otlphttp.p")
    h.kill()
    local seen = {}
    for _, r in ipairs(reqs) do
      assert.equals(200, r.status)
      seen[r.content_type .. " " .. r.content_encoding] = r.custom
    end
    assert.same({ ["application/x-protobuf gzip"] = "s3cr3t-value", ["application/json "] = "" }, seen)
    assert.is_nil(detail:find("s3cr3t", 1, true))
    assert.is_nil(h.read():find("s3cr3t", 1, true))
    local spans = get(port, "spans")
    local n = 0
    for _, s in ipairs(spans) do
      if s.name == "GraphEvaluate" then
        n = n + 1
        assert.equals("moonwatch", s.resource["service.name"])
      end
    end
    assert.equals(2, n) -- the load's root span, once by each exporter
  end)

  it("sends the protocol's headers whatever the custom headers say (OTLP/HTTP and OTLP/gRPC)", function()
    local port = http_receiver()
    local gport, out = grpc_receiver()
    local h = run("hdrs", string.format([[
tracing { sampling_fraction = 1, write_to = { otelcol.exporter.otlphttp.p.input, otelcol.exporter.otlphttp.n.input,
  otelcol.exporter.otlp.g.input } }
otelcol.exporter.otlphttp "p" {
  client = { endpoint = "http://127.0.0.1:%d",
    headers = { ["Content-Type"] = "application/json", ["Content-Encoding"] = "identity", ["X-Custom"] = "v" } },
}
otelcol.exporter.otlphttp "n" {
  client = { endpoint = "http://127.0.0.1:%d", compression = "none",
    headers = { ["content-type"] = "text/plain", ["content-encoding"] = "gzip" } },
}
otelcol.exporter.otlp "g" {
  client = { endpoint = "127.0.0.1:%d", tls = { insecure = true },
    headers = { ["Content-Type"] = "application/json", TE = "deflate", ["grpc-encoding"] = "identity",
      ["User-Agent"] = "fake", ["grpc-timeout"] = "1n" } },
}
]], port, port, gport))
    local reqs = proc.wait_for(function()
      local r = get(port, "requests")
      return #r >= 2 and r
    end, 10, "two OTLP/HTTP export requests")
    local calls = proc.wait_for(function()
      local c = grpc_calls(out)
      return #c >= 1 and c
    end, 10, "an OTLP/gRPC export call")
    h.kill()
    local seen = {}
    for _, r in ipairs(reqs) do
      seen[string.format("%d %s %s %s", r.status, r.content_type, r.content_encoding, r.custom)] = true
    end
    assert.same({ ["200 application/x-protobuf  "] = true, ["200 application/x-protobuf gzip v"] = true }, seen)
    local c = calls[1]
    assert.same({ 0, "application/grpc", "trailers", "gzip" }, { c.grpc_status, c.content_type, c.te, c.grpc_encoding })
    assert.matches("^moonwatch/", c.user_agent)
  end)

  it("a stop drops what is queued or being retried, counted and logged in one line, without waiting for a"
    .. " failing endpoint", function()
    -- nothing listens: the first attempt fails, the retry is a minute away
    local h = run("stopdrop", string.format([[
tracing { sampling_fraction = 1, write_to = { otelcol.exporter.otlphttp.d.input } }
otelcol.exporter.otlphttp "d" {
  client           = { endpoint = "http://127.0.0.1:%d" },
  retry_on_failure = { initial_interval = "1m", max_interval = "1m" },
}
]], proc.free_port()))
    local info = proc.wait_for(function()
      local _, body = proc.http("GET", h.base .. "/api/v0/components/otelcol.exporter.otlphttp.d")
      local i = cjson.decode(body).debug_info
      return i.failed_attempts_in_a_row >= 1 and i
    end, 10, "spans waiting for a retry")
    local t0 = os.time()
    h.kill("TERM")
    assert.equals(0, h.wait(10))
    assert.is_true(os.time() - t0 <= 3, "stopping took " .. (os.time() - t0) .. " s")
    local line = h.read():match('[^\n]*msg="stopping with spans not sent; they are dropped"[^\n]*')
    assert.is_string(line, h.read())
    local n = tonumber(line:match(" spans=(%d+)"))
    assert.is_true(info.pending_spans > 0 and n >= info.pending_spans, line)
  end)

  it("takes the meta-monitoring guide's block in Alloy syntax too", function()
    local gport, out = grpc_receiver()
    local file = proc.write(tmp .. "/guide.alloy", string.format([[
tracing {
  sampling_fraction = 1
  write_to          = [otelcol.exporter.otlp.default.input]
}

otelcol.exporter.otlp "default" {
  client {
    endpoint = "127.0.0.1:%d"
    tls {
      insecure = true
    }
  }
}
]], gport))
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-guide" })
    handles[#handles + 1] = h
    local spans = proc.wait_for(function()
      local s = by_name(grpc_spans(out), "EvaluateNode")
      return #s > 0 and s
    end, 10, "the load's spans")
    h.kill()
    assert.equals("otelcol.exporter.otlp.default", spans[1].attributes.node_id)
  end)

  it("refuses what it cannot do, with file:line", function()
    local cases = {
      { [[prometheus.remote_write "r" { endpoint = { url = "http://x/api/v1/write" } }
tracing { write_to = { prometheus.remote_write.r.receiver } }]], "element 1: expected an otelcol consumer of traces" },
      { [[tracing { sampler = { jaeger_remote = { url = "http://x" } } }]], "not supported yet" },
      { [[otelcol.exporter.otlp "x" { client = { endpoint = "http://tempo:4317" } }]], "without a scheme" },
      { [[otelcol.exporter.otlphttp "x" { client = { endpoint = "tempo:4318" } }]], "must start with http://" },
      { [[otelcol.exporter.otlp "x" { client = { endpoint = "tempo:4317", compression = "zstd" } }]], "compression" },
    }
    for i, c in ipairs(cases) do
      local f = proc.write(string.format("%s/bad%d.lua", tmp, i), c[1])
      local code, _, err = proc.run({ "check", f })
      assert.equals(1, code, err)
      assert.truthy(err:find(c[2], 1, true), err)
      assert.truthy(err:find("bad" .. i .. ".lua:%d"), err)
    end
  end)
end)
