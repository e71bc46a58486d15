-- otelcol.exporter.otlphttp in the spec's VM (moonwatch.otlp_exporter's retries and queue): an
-- OTLP/HTTP receiver on moonwatch's own HTTP server, span batches appended straight to the
-- component's input.
local controller = require("moonwatch.controller")
local http_server = require("moonwatch.http_server")
local push_endpoint = require("moonwatch.push_endpoint")
local traces = require("moonwatch.batch.traces")
local core = require("moonwatch.core")
local loop = require("helpers.loop")
local proc = require("helpers.proc")
local log = require("moonwatch.log")

local SRC = os.getenv("MOONWATCH_SOURCE_DIR") or "."
local DIRS = { SRC .. "/stdlib" }
local tmp = proc.tmpdir()

-- /v1/traces: the first `fail` requests answered `status` with the headers `headers` and the
-- body `body`, then 200 with `ok_body`; the time of each request
local recv = { fail = 0, status = 503, headers = {}, times = {}, body = "busy", ok_body = "" }
local server = assert(http_server.listen("127.0.0.1:0"))
server:route("POST", "/v1/traces", function()
  recv.times[#recv.times + 1] = core.update_now()
  if #recv.times <= recv.fail then
    return recv.status, recv.body, recv.headers
  end
  return 200, recv.ok_body
end)

-- queue: the sending_queue block's arguments (default: none)
local function start(retry, queue)
  local file = proc.write(tmp .. "/o" .. math.random(1e9) .. ".lua", string.format([[
otelcol.exporter.otlphttp "x" {
  client = { endpoint = "http://%s", compression = "none" },
  retry_on_failure = { %s },
  sending_queue = { %s },
}
]], server:addr(), retry, queue or ""))
  local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" .. math.random(1e9) })
  local ok, problems = ctrl:load(file)
  assert(ok, problems and table.concat(problems, "\n"))
  return ctrl, ctrl.nodes["otelcol.exporter.otlphttp.x"].instance
end

local function one_span()
  local b = traces.new()
  traces.resource(b, "service.name", "t")
  assert(traces.add(b, { trace_id = string.rep("\1", 16), span_id = string.rep("\2", 8), name = "s",
    start_ns = 1, end_ns = 2 }))
  return b
end

-- Appends one span; true once it is sent (within 5 s)
local function send_one(inst)
  inst:append(one_span())
  return loop.run_until(function()
    return inst:debug_info().sent_spans == 1
  end, 5)
end

describe("otelcol.exporter.otlphttp", function()
  setup(function()
    log.configure({ level = "error" })
  end)
  teardown(function()
    log.configure({ level = "info" })
  end)
  before_each(function()
    recv.times = {}
  end)

  it("waits at least its backoff after a throttled answer (Retry-After: 0 is no reason to retry at once)", function()
    recv.fail, recv.status, recv.headers = 3, 503, { ["Retry-After"] = "0" }
    local ctrl, inst = start('initial_interval = "200ms", max_interval = "200ms", randomization_factor = 0')
    local ok = send_one(inst)
    ctrl:stop()
    assert.is_true(ok)
    assert.equals(4, #recv.times)
    for i = 2, 4 do
      assert.is_true(recv.times[i] - recv.times[i - 1] >= 0.15,
        string.format("retry %d came %.3f s after the attempt before it", i - 1, recv.times[i] - recv.times[i - 1]))
    end
  end)

  it("takes the longer of Retry-After and its backoff, as exporterhelper", function()
    recv.fail, recv.status, recv.headers = 1, 429, { ["Retry-After"] = "1" }
    local ctrl, inst = start('initial_interval = "1500ms", max_interval = "1500ms", randomization_factor = 0')
    local ok = send_one(inst)
    ctrl:stop()
    assert.is_true(ok)
    assert.is_true(recv.times[2] - recv.times[1] >= 1.4, string.format("retried after %.3f s", recv.times[2] - recv.times[1]))
  end)

  it("does not sleep forever on a Retry-After that is not delta-seconds", function()
    recv.fail, recv.status, recv.headers = 1, 503, { ["Retry-After"] = "inf" }
    local ctrl, inst = start('initial_interval = "100ms", max_interval = "100ms", randomization_factor = 0, '
      .. 'max_elapsed_time = "0s"')
    local ok = send_one(inst)
    ctrl:stop()
    assert.is_true(ok, "not sent again after a Retry-After of inf")
  end)

  it("counts as failed what a stop drops: the batches queued and those waiting for a retry", function()
    recv.fail, recv.status, recv.headers = 1e9, 503, {}
    local ctrl, inst = start('initial_interval = "1m", max_interval = "1m"', "num_consumers = 1")
    for _ = 1, 3 do
      inst:append(one_span())
    end
    local ok = loop.run_until(function()
      return #recv.times >= 1
    end, 5)
    local before = inst:debug_info()
    ctrl:stop()
    local after = inst:debug_info()
    assert.is_true(ok)
    -- one batch being retried, two queued
    assert.same({ 3, 2, 0 }, { before.pending_spans, before.queue_size, before.send_failed_spans })
    assert.same({ 0, 0, 3 }, { after.pending_spans, after.queue_size, after.send_failed_spans })
    -- what arrives after the stop is refused and counted, never queued without a consumer
    inst:append(one_span())
    assert.same({ 0, 1 }, { inst:debug_info().queue_size, inst:debug_info().enqueue_failed_spans })
  end)
end)

-- Wraps client:request to record the body size of each response.
local function record_bodies(client)
  local request, sizes = client.request, {}
  client.request = function(c, req)
    local resp, err = request(c, req)
    sizes[#sizes + 1] = resp and #resp.body or -1
    return resp, err
  end
  return sizes
end

describe("otelcol.exporter.otlphttp's answers", function()
  setup(function()
    log.configure({ level = "error" })
  end)
  teardown(function()
    log.configure({ level = "info" })
    recv.body, recv.ok_body = "busy", ""
  end)

  it("reads at most 64 KiB of a response body, as the Collector (an error page or a 2xx alike)", function()
    recv.times, recv.fail, recv.status, recv.headers = {}, 1, 503, {}
    recv.body, recv.ok_body = string.rep("e", 4 * 1024 * 1024), string.rep("o", 4 * 1024 * 1024)
    local ctrl, inst = start('initial_interval = "50ms", max_interval = "50ms"')
    local sizes = record_bodies(inst.client)
    inst:append(one_span())
    local ok = loop.run_until(function()
      return inst:debug_info().sent_spans == 1
    end, 10)
    ctrl:stop()
    assert.is_true(ok)
    assert.same({ 64 * 1024, 64 * 1024 }, sizes)
  end)
end)

describe("otelcol.exporter.otlp", function()
  local function grpc(client, check_only)
    local file = proc.write(tmp .. "/g" .. math.random(1e9) .. ".lua", string.format([[
otelcol.exporter.otlp "g" {
  client = { %s },
}
]], client))
    local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" .. math.random(1e9) })
    local ok, problems = ctrl:load(file)
    if check_only then
      return ok, problems and table.concat(problems, "\n")
    end
    assert(ok, problems and table.concat(problems, "\n"))
    return ctrl, ctrl.nodes["otelcol.exporter.otlp.g"].instance
  end

  -- the grpc-timeout header of an export with client { timeout = t } (the call answered OK here)
  local function grpc_timeout(t)
    local ctrl, inst = grpc(string.format('endpoint = "127.0.0.1:4317", tls = { insecure = true }, timeout = "%s"', t))
    local sent
    inst.client.request = function(_, req)
      sent = req.headers["grpc-timeout"]
      return { status = 200, headers = { ["grpc-status"] = "0" }, body = "" }
    end
    inst:append(one_span())
    loop.run_until(function()
      return sent ~= nil
    end, 5)
    ctrl:stop()
    return sent
  end

  it("sends grpc-timeout as gRPC defines it: at most 8 digits, never 0 for a positive timeout", function()
    assert.equals("5000m", grpc_timeout("5s"))
    assert.equals("500u", grpc_timeout("500us"))
    assert.equals("108000S", grpc_timeout("30h"))
    assert.equals("1500m", grpc_timeout("1.5s"))
  end)

  it("refuses an endpoint with credentials in it (they would be sent as basic auth and shown)", function()
    local ok, err = grpc('endpoint = "user:secret@tempo:4317"', true)
    assert.is_falsy(ok)
    assert.matches("endpoint: host:port without user information", err, 1, true)
    assert.is_nil(err:find("secret", 1, true))
  end)
end)

describe("push_endpoint.post", function()
  it("reads at most 64 KiB of a response body (remote_write, loki.write show an excerpt of it)", function()
    recv.times, recv.fail, recv.status, recv.headers, recv.body = {}, 1, 500, {}, string.rep("e", 4 * 1024 * 1024)
    local ep = { cfg = { url = "http://" .. server:addr() .. "/v1/traces", headers = {}, remote_timeout = 5 },
      client = assert(require("moonwatch.http_client").new({})) }
    local sizes = record_bodies(ep.client)
    local task = require("moonwatch.scheduler").spawn(function()
      push_endpoint.post(ep, "x", {}, 1, false)
    end, { name = "spec" })
    assert.is_true(loop.run_until(function()
      return task.done
    end, 10))
    recv.body = "busy"
    assert.same({ 64 * 1024 }, sizes)
  end)
end)

describe("push_endpoint.retry_after", function()
  it("takes delta-seconds above 0 only (HTTP's 1*DIGIT), else the default", function()
    local function ra(v)
      return push_endpoint.retry_after({ ["retry-after"] = v }, 7)
    end
    assert.equals(5, ra("5"))
    assert.equals(5, ra(" 5 "))
    assert.equals(7, ra("0"))
    assert.equals(7, ra("-3"))
    assert.equals(7, ra("inf"))
    assert.equals(7, ra("nan"))
    assert.equals(7, ra("1e9"))
    assert.equals(7, ra("0x10"))
    assert.equals(7, ra("Wed, 21 Oct 2015 07:28:00 GMT"))
    assert.equals(7, push_endpoint.retry_after({}, 7))
  end)
end)
