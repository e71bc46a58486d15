-- prometheus.remote_write in the spec's VM: a receiver on moonwatch's own HTTP
-- server, batches appended straight to the component's receiver.
local controller = require("moonwatch.controller")
local http_server = require("moonwatch.http_server")
local batches = require("helpers.batches")
local loop = require("helpers.loop")
local proc = require("helpers.proc")
local log = require("moonwatch.log")
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local core = require("moonwatch.core")
local scheduler = require("moonwatch.scheduler")

local SRC = os.getenv("MOONWATCH_SOURCE_DIR") or "."
local DIRS = { SRC .. "/stdlib" }
local tmp = proc.tmpdir()

-- Samples received, counted from the decoded requests, and each request's.
local received, sizes = 0, {}
local server = assert(http_server.listen("127.0.0.1:0"))
server:route("POST", "/api/v1/write", function(req)
  local out, err = ffi.new("mw_rwdec_t *[1]"), ffi.new("char[256]")
  assert(C.mw_ffi_rwdec_new(req.body, #req.body, out, err, 256) == 0, ffi.string(err))
  local d = ffi.gc(out[0], C.mw_ffi_rwdec_free)
  local series, samples, nmeta = ffi.new("size_t[1]"), ffi.new("size_t[1]"), ffi.new("size_t[1]")
  C.mw_ffi_rwdec_counts(d, series, samples, nmeta)
  received = received + tonumber(samples[0])
  sizes[#sizes + 1] = tonumber(samples[0])
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
  local out, err = ffi.new("mw_rwdec_t *[1]"), ffi.new("char[256]")
  assert(C.mw_ffi_rwdec_new(req.body, #req.body, out, err, 256) == 0, ffi.string(err))
  local d = ffi.gc(out[0], C.mw_ffi_rwdec_free)
  local series, samples, nmeta = ffi.new("size_t[1]"), ffi.new("size_t[1]"), ffi.new("size_t[1]")
  C.mw_ffi_rwdec_counts(d, series, samples, nmeta)
  slowfirst.n = slowfirst.n + 1
  if slowfirst.n == 1 then
    slowfirst.waiting = true
    scheduler.sleep(1.5)
    slowfirst.waiting = false
  elseif slowfirst.waiting then
    slowfirst.during = slowfirst.during + tonumber(samples[0])
  end
  return 204, ""
end)

-- /slow: each request answered after 80 ms, its samples in sizes.
server:route("POST", "/slow", function(req)
  local out, err = ffi.new("mw_rwdec_t *[1]"), ffi.new("char[256]")
  assert(C.mw_ffi_rwdec_new(req.body, #req.body, out, err, 256) == 0, ffi.string(err))
  local d = ffi.gc(out[0], C.mw_ffi_rwdec_free)
  local series, samples, nmeta = ffi.new("size_t[1]"), ffi.new("size_t[1]"), ffi.new("size_t[1]")
  C.mw_ffi_rwdec_counts(d, series, samples, nmeta)
  scheduler.sleep(0.08)
  received = received + tonumber(samples[0])
  sizes[#sizes + 1] = tonumber(samples[0])
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
