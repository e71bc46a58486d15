-- prometheus.remote_write in the spec's VM: a receiver on moonwatch's own HTTP
-- server, batches appended straight to the component's receiver.
local controller = require("moonwatch.controller")
local http_server = require("moonwatch.http_server")
local batches = require("helpers.batches")
local rwdecode = require("helpers.rwdecode")
local loop = require("helpers.loop")
local proc = require("helpers.proc")
local log = require("moonwatch.log")
local core = require("moonwatch.core")
local scheduler = require("moonwatch.scheduler")

local SRC = os.getenv("MOONWATCH_SOURCE_DIR") or "."
local DIRS = { SRC .. "/stdlib" }
local tmp = proc.tmpdir()

-- Samples received, counted from the decoded requests, and each request's.
local received, sizes = 0, {}
local server = assert(http_server.listen("127.0.0.1:0"))
server:route("POST", "/api/v1/write", function(req)
  local _, samples = rwdecode.counts(req.body)
  received = received + samples
  sizes[#sizes + 1] = samples
  return 204, ""
end)
-- A redirect without a Location: the client cannot follow it.
local redirects = 0
server:route("POST", "/redirect", function()
  redirects = redirects + 1
  return 302, "moved"
end)
-- 503 with Retry-After: 1 once, then accepted; the times of the requests.
local busy = {}
server:route("POST", "/busy", function()
  busy[#busy + 1] = core.update_now()
  if #busy == 1 then
    return 503, "busy", { ["Retry-After"] = "1" }
  end
  return 204, ""
end)

-- The first request to /slowfirst is answered after 1.5 s, the others at once; the samples of
-- the requests answered while the first one waited.
local slowfirst = { n = 0, during = 0 }
server:route("POST", "/slowfirst", function(req)
  local _, samples = rwdecode.counts(req.body)
  slowfirst.n = slowfirst.n + 1
  if slowfirst.n == 1 then
    slowfirst.waiting = true
    scheduler.sleep(1.5)
    slowfirst.waiting = false
  elseif slowfirst.waiting then
    slowfirst.during = slowfirst.during + samples
  end
  return 204, ""
end)

-- /slow: each request answered after 80 ms, its samples in sizes.
server:route("POST", "/slow", function(req)
  local _, samples = rwdecode.counts(req.body)
  scheduler.sleep(0.08)
  received = received + samples
  sizes[#sizes + 1] = samples
  return 204, ""
end)

-- /shuffle: each request answered after 0 to 30 ms (so requests of different shards overtake each
-- other); every sample's timestamp by series, in the order received.
local shuffled = {}
server:route("POST", "/shuffle", function(req)
  local got = rwdecode.series(req.body)
  scheduler.sleep(math.random() * 0.03)
  for _, s in ipairs(got) do
    local seen = shuffled[s.labels] or {}
    shuffled[s.labels] = seen
    for _, sample in ipairs(s.samples) do
      seen[#seen + 1] = sample[1]
    end
  end
  received = received + #got
  return 204, ""
end)

-- /flaky: 503 while flaky.down, else accepted.
local flaky = { down = true, requests = 0 }
server:route("POST", "/flaky", function()
  flaky.requests = flaky.requests + 1
  if flaky.down then
    return 503, "down"
  end
  return 204, ""
end)

-- The headers of the requests to /tenant.
local tenant = {}
server:route("POST", "/tenant", function(req)
  tenant[#tenant + 1] = req.headers
  return 204, ""
end)

local function start(queue, path, extra, top)
  local file = proc.write(tmp .. "/p" .. math.random(1e9) .. ".lua", string.format([[
prometheus.remote_write "w" {
  endpoint = {
    url = "http://%s%s",
    name = "ep",
    queue_config = { %s },
    metadata_config = { send = false },
    %s
  },
  %s
}
]], server:addr(), path or "/api/v1/write", queue, extra or "", top or ""))
  local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" .. math.random(1e9) })
  local ok, problems = ctrl:load(file)
  assert(ok, problems and table.concat(problems, "\n"))
  return ctrl, ctrl.nodes["prometheus.remote_write.w"].instance
end

local function committed(inst)
  return inst:debug_info().endpoints[1].samples_committed
end

-- A batch of n series at ts_ms (keep the second value alive while the batch is used).
local function batch_of(n, ts_ms)
  local lines = {}
  for i = 1, n do
    lines[#lines + 1] = string.format('m{i="%d"} %d', i, i)
  end
  return batches.from_text(table.concat(lines, "\n") .. "\n", ts_ms)
end

describe("prometheus.remote_write", function()
  setup(function()
    log.configure({ level = "error" })
  end)
  teardown(function()
    log.configure({ level = "info" })
  end)
  before_each(function()
    received, sizes = 0, {}
  end)

  it("does not commit a span one of whose shard senders failed: it is sent again", function()
    local ctrl, inst = start('min_shards = 4, max_shards = 4, batch_send_deadline = "20ms", '
      .. 'min_backoff = "10ms", max_backoff = "20ms"')
    -- the first request of the first span fails with a Lua error in its sender
    local post, failed = getmetatable(inst).__index.post, false
    inst.post = function(...)
      if not failed then
        failed = true
        error("injected sender failure")
      end
      return post(...)
    end
    local b, keep = batch_of(50, 1000)
    inst:append(b)
    local _ = keep
    -- every committed sample reached the receiver (at least once)
    local ok = loop.run_until(function()
      return failed and committed(inst) == 50 and received >= 50
    end, 5)
    assert.is_true(failed)
    assert.equals(50, committed(inst))
    assert.is_true(ok, string.format("received %d of 50 committed samples", received))
    ctrl:stop()
  end)

  it("drops a request answered with a 3xx it cannot follow, as Prometheus (not retried forever)", function()
    local ctrl, inst = start('batch_send_deadline = "20ms", min_backoff = "10ms", max_backoff = "20ms"', "/redirect")
    local b, keep = batch_of(10, 1000)
    inst:append(b)
    local _ = keep
    local ok = loop.run_until(function()
      return committed(inst) == 10
    end, 3)
    assert.is_true(ok, string.format("not committed after %d requests", redirects))
    assert.equals(1, redirects)
    ctrl:stop()
  end)

  it("sends the endpoint's headers and credentials with every request (a tenant for Mimir, say)", function()
    local ctrl, inst = start('batch_send_deadline = "20ms"', "/tenant",
      'headers = { ["X-Scope-OrgID"] = "tenant-1" }, basic_auth = { username = "user", password = "pass" },')
    local b, keep = batch_of(10, 1000)
    inst:append(b)
    local _ = keep
    assert.is_true(loop.run_until(function()
      return committed(inst) == 10
    end, 5))
    local h = tenant[1]
    assert.equals("tenant-1", h["x-scope-orgid"])
    assert.equals("Basic dXNlcjpwYXNz", h["authorization"])
    assert.equals("snappy", h["content-encoding"])
    assert.equals("0.1.0", h["x-prometheus-remote-write-version"])
    ctrl:stop()
  end)

  it("honours Retry-After on a 5xx, as Prometheus", function()
    local ctrl, inst = start('batch_send_deadline = "20ms", min_backoff = "10ms", max_backoff = "20ms"', "/busy")
    local b, keep = batch_of(10, 1000)
    inst:append(b)
    local _ = keep
    assert.is_true(loop.run_until(function()
      return committed(inst) == 10
    end, 5))
    assert.equals(2, #busy)
    assert.is_true(busy[2] - busy[1] >= 0.9, string.format("retried after %.3f s", busy[2] - busy[1]))
    ctrl:stop()
  end)

  it("sends each shard's requests on their own: a slow request holds back only its shard", function()
    local ctrl, inst = start('min_shards = 2, max_shards = 2, max_samples_per_send = 10, '
      .. 'batch_send_deadline = "20ms"', "/slowfirst")
    local keep = {}
    for k = 1, 5 do
      local b, kb = batch_of(40, 1000 * k)
      keep[k] = kb
      inst:append(b)
    end
    assert.is_true(loop.run_until(function()
      return committed(inst) == 200
    end, 10))
    assert.equals(5, #keep) -- the batches' label sets lived until they were appended
    -- While the first request (one shard's) waited, the other shard went on with its next ones;
    -- when a span waits for all its requests, at most that span's other request (10) gets through.
    assert.is_true(slowfirst.during >= 30, string.format("%d samples sent meanwhile", slowfirst.during))
    ctrl:stop()
  end)

  it("waits for full requests while samples come in, whatever wakes it (a request done, say)", function()
    local ctrl, inst = start('max_samples_per_send = 100, batch_send_deadline = "5s"', "/slow")
    local keep = {}
    for k = 1, 10 do -- 50 samples at a time: a request is full every second append, and is done
      -- (80 ms) after the next append
      local b, kb = batch_of(50, 1000 * k)
      keep[k] = kb
      inst:append(b)
      loop.run_for(0.05)
    end
    assert.is_true(loop.run_until(function()
      return received == 500
    end, 10))
    assert.equals(10, #keep)
    assert.same({ 100, 100, 100, 100, 100 }, sizes)
    ctrl:stop()
  end)

  it("delivers every sample once and in order per series while the shard count goes down and up", function()
    local ctrl, inst = start('min_shards = 1, max_shards = 8, max_samples_per_send = 200, capacity = 400, '
      .. 'batch_send_deadline = "30ms"', "/shuffle")
    local ep = inst.endpoints.ep
    ep.sharder.tick = function(self) -- the counts below are the only ones
      return self.shards
    end
    -- 120 series every 10 ms for 4 s (requests are sent both full and at the deadline), the shard
    -- count changed every 50 to 250 ms to 1..6 (down as often as up), while requests are in flight
    local counts, k, appended, next_change = { 4, 1, 3, 2, 6, 1, 5, 2, 1, 3 }, 0, 0, 0
    local keep
    for step = 1, 400 do
      local b, kb = batch_of(120, 1000 + 10 * step)
      keep = kb
      inst:append(b)
      appended = appended + 120
      if step >= next_change then
        k = k % #counts + 1
        ep.sharder.shards = counts[k]
        next_change = step + 5 + math.random(0, 20)
      end
      loop.run_for(0.01)
    end
    assert.is_truthy(keep)
    local ok = loop.run_until(function()
      return committed(inst) == appended
    end, 20)
    assert.is_true(ok, string.format("%d of %d samples committed, shards %d", committed(inst), appended,
      ep.sharder.shards))
    local series = 0
    for labels, seen in pairs(shuffled) do
      series = series + 1
      assert.equals(400, #seen, labels)
      for i = 1, 400 do
        assert.equals(1000 + 10 * i, seen[i], labels .. " sample " .. i)
      end
    end
    assert.equals(120, series)
    ctrl:stop()
  end)

  it("turns unhealthy when samples are pending and none is sent, with the lag, and healthy once sent", function()
    local ctrl, inst = start('batch_send_deadline = "100ms", min_backoff = "10ms", max_backoff = "50ms"',
      "/flaky", 'remote_timeout = "200ms",')
    local node = ctrl.nodes["prometheus.remote_write.w"]
    local ep = inst.endpoints.ep
    -- nothing pending: healthy however long nothing is sent
    loop.run_for(1.2)
    assert.equals("healthy", node.health.state)
    local now_ms = math.floor(require("moonwatch.ffi").time_now() * 1000)
    local b, keep = batch_of(10, now_ms - 3000) -- samples 3 s old
    inst:append(b)
    assert.is_true(loop.run_until(function()
      return node.health.state == "unhealthy"
    end, 5), node.health.message)
    assert.is_truthy(keep)
    local msg = node.health.message
    assert.matches("endpoint ep: samples pending and none sent for %d", msg)
    assert.matches("last error: server returned HTTP status 503", msg, 1, true)
    assert.is_true(ep.stuck)
    local age = inst:debug_info().endpoints[1].oldest_unsent_age_seconds
    assert.is_true(age >= 3 and age < 10, "age " .. age)
    assert.near(age, ep.m.oldest_age:get(), 0.1)
    -- Prometheus's lag: highest timestamp in minus highest sent (whole seconds, as Prometheus)
    assert.equals(math.floor((now_ms - 3000) / 1000), inst.m.highest:with("prometheus.remote_write.w"):get())
    assert.equals(0, ep.m.highest_sent:get())
    -- the endpoint comes back: sent, healthy, no lag
    flaky.down = false
    assert.is_true(loop.run_until(function()
      return node.health.state == "healthy"
    end, 5), node.health.message)
    assert.equals("sending again", node.health.message)
    assert.equals(10, committed(inst))
    assert.equals(0, inst:debug_info().endpoints[1].oldest_unsent_age_seconds)
    assert.equals(math.floor((now_ms - 3000) / 1000), ep.m.highest_sent:get())
    assert.is_false(ep.stuck)
    ctrl:stop()
  end)

  it("fsyncs the WAL every fsync_interval with fsync = \"interval\" (on a worker thread)", function()
    local ctrl, inst = start('batch_send_deadline = "50ms"', nil, nil,
      'wal = { fsync = "interval", fsync_interval = "50ms" },')
    local b, kb = batch_of(10, 1000)
    inst:append(b)
    assert.is_true(loop.run_until(function()
      return inst:debug_info().wal.fsyncs >= 3 and received == 10
    end, 10))
    assert.is_truthy(kb)
    ctrl:stop()
  end)
end)

describe("prometheus.remote_write arguments", function()
  it("do not offer HTTP/2 by default (Alloy's remote_write default), and do when enable_http2 = true", function()
    local schema = require("moonwatch.schema")
    package.path = SRC .. "/stdlib/?.lua;" .. SRC .. "/stdlib/?/init.lua;" .. package.path
    local mod = require("prometheus.remote_write")
    local args = schema.validate({ args = mod.args }, { endpoint = { { url = "http://127.0.0.1:9/api/v1/write" } } })
    assert.is_false(args.endpoint[1].enable_http2)
    args = schema.validate({ args = mod.args },
      { endpoint = { { url = "http://127.0.0.1:9/api/v1/write", enable_http2 = true } } })
    assert.is_true(args.endpoint[1].enable_http2)
  end)
end)
