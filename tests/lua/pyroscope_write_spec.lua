-- pyroscope.write in the spec's VM: a Pyroscope push receiver on moonwatch's own HTTP server,
-- profiles appended straight to the component's receiver.
package.path = (os.getenv("MOONWATCH_SOURCE_DIR") or ".") .. "/stdlib/?.lua;" .. package.path
local controller = require("moonwatch.controller")
local http_server = require("moonwatch.http_server")
local native = require("moonwatch.native.pyroscope")
local pprof = require("moonwatch.native.pprof")
local profiles = require("moonwatch.batch.profiles")
local loop = require("helpers.loop")
local proc = require("helpers.proc")
local log = require("moonwatch.log")

local SRC = os.getenv("MOONWATCH_SOURCE_DIR") or "."
local DIRS = { SRC .. "/stdlib" }
local tmp = proc.tmpdir()

-- /push.v1.PusherService/Push: 503 while push.down; else the profiles' ids, in the order received
local push = { down = true, requests = 0, got = {}, labels = {} }
local server = assert(http_server.listen("127.0.0.1:0"))
server:route("POST", "/push.v1.PusherService/Push", function(req)
  push.requests = push.requests + 1
  if push.down then
    return 503, push.down_body or "down"
  end
  local series = assert(native.decode_push(req.body))
  for _, s in ipairs(series) do
    for _, sample in ipairs(s.samples) do
      push.got[#push.got + 1] = sample.raw
      local labels = {}
      for _, l in ipairs(s.labels) do
        labels[l[1]] = l[2]
      end
      push.labels[#push.labels + 1] = labels
    end
  end
  return 200, "{}"
end)

-- /debug/pprof/mutex: a cumulative mutex profile, 10 more contentions at each request
local target = { hits = 0 }
server:route("GET", "/debug/pprof/mutex", function()
  target.hits = target.hits + 1
  local b = pprof.builder()
  b:sample_type("contentions", "count")
  b:sample_type("delay", "nanoseconds")
  b:meta("contentions", "count", 1, os.time(), 0)
  b:sample({ b:func_location("sync.(*Mutex).Lock", "mutex.go", 1, 2) }, { 10 * target.hits, 1000 * target.hits })
  return 200, assert(b:finish())
end)

local function start(extra, top)
  local file = proc.write(tmp .. "/p" .. math.random(1e9) .. ".lua", string.format([[
pyroscope.write "w" {
  endpoint = {
    url = "http://%s",
    name = "ep",
    %s
  },
  %s
}
]], server:addr(), extra or "", top or ""))
  local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" .. math.random(1e9) })
  local ok, problems = ctrl:load(file)
  assert(ok, problems and table.concat(problems, "\n"))
  return ctrl, ctrl.nodes["pyroscope.write.w"].instance
end

local function send_profile(inst, raw)
  local b = profiles.new()
  profiles.add(b, { __name__ = "process_cpu", service_name = "s" }, raw, "")
  inst:append(b)
end

describe("pyroscope.write", function()
  local write
  setup(function()
    log.configure({ level = "error" })
    -- the module table the controller uses (registry.find caches it by its text)
    write = assert(require("moonwatch.registry").find("pyroscope.write", DIRS))
  end)
  teardown(function()
    log.configure({ level = "info" })
  end)

  it("makes max_backoff_retries attempts in all, as Alloy (dskit's backoff), then drops the request", function()
    local function retries()
      local body = assert(require("moonwatch.metrics").default:expose("text/plain", ""))
      return tonumber(body:match('\npyroscope_write_retries_total{[^}]*} (%d+)') or 0)
    end
    local before = retries()
    push.down, push.requests, push.got = true, 0, {}
    local ctrl, inst = start('min_backoff_period = "10ms", max_backoff_period = "20ms", max_backoff_retries = 3')
    send_profile(inst, "p1")
    local ok = loop.run_until(function()
      return inst:debug_info().endpoints[1].dropped_profiles == 1
    end, 5)
    loop.run_for(0.2) -- no attempt after the drop
    local retried = retries() - before
    ctrl:stop()
    push.down = false
    assert.is_true(ok)
    assert.equals(3, push.requests) -- 3 attempts, 2 waits (it made 4)
    assert.equals(2, retried)
  end)

  it("drops the oldest waiting request when its queue is full, never the one being retried", function()
    local max = write.MAX_QUEUE
    write.MAX_QUEUE = 3
    push.down, push.requests, push.got = true, 0, {}
    local ctrl, inst = start('min_backoff_period = "30ms", max_backoff_period = "30ms", max_backoff_retries = 0')
    send_profile(inst, "p1")
    -- p1 is being sent (and retried) while the queue fills up past its 3 requests
    assert.is_true(loop.run_until(function()
      return push.requests >= 2
    end, 5))
    for i = 2, 5 do
      send_profile(inst, "p" .. i)
    end
    push.down = false
    local ok = loop.run_until(function()
      return inst:debug_info().endpoints[1].queued_requests == 0 and #push.got >= 3
    end, 5)
    loop.run_for(0.2)
    local info = inst:debug_info().endpoints[1]
    write.MAX_QUEUE = max
    ctrl:stop()
    assert.is_true(ok)
    -- p1 (being retried) went through; p2 then p3, the oldest waiting, were dropped to make
    -- room for p4 and p5; nothing sent twice, every profile counted once
    assert.same({ "p1", "p4", "p5" }, push.got)
    assert.equals(3, info.sent_profiles)
    assert.equals(2, info.dropped_profiles)
  end)

  it("bounds the queue's bytes: drops the oldest waiting, never the one being sent; one request over the bound"
    .. " goes alone", function()
    push.down, push.requests, push.got = true, 0, {}
    local ctrl, inst = start('min_backoff_period = "30ms", max_backoff_period = "30ms", max_backoff_retries = 0',
      'queue = { max_size = "128KiB" },')
    local big = function(tag)
      return tag .. string.rep("x", 40 * 1024)
    end
    send_profile(inst, big("a"))
    -- a is being sent (and retried) while b, c, d arrive: 3 of ~40 KiB fit in 128 KiB, b goes for d
    assert.is_true(loop.run_until(function()
      return push.requests >= 2
    end, 5))
    for _, tag in ipairs({ "b", "c", "d" }) do
      send_profile(inst, big(tag))
    end
    local mid = inst:debug_info().endpoints[1]
    -- one that cannot fit beside the one being sent: not taken, and nothing dropped for it
    send_profile(inst, string.rep("z", 200 * 1024))
    push.down = false
    local ok = loop.run_until(function()
      return inst:debug_info().endpoints[1].queued_requests == 0 and #push.got >= 3
    end, 5)
    -- into an empty queue, one larger than the bound goes alone
    send_profile(inst, string.rep("y", 200 * 1024))
    local ok2 = loop.run_until(function()
      return #push.got >= 4
    end, 5)
    local info = inst:debug_info().endpoints[1]
    inst:refresh_health()
    local h = ctrl.nodes["pyroscope.write.w"].health
    local health = { state = h.state, message = h.message }
    ctrl:stop()
    assert.is_true(ok and ok2)
    assert.same({ 3, true }, { mid.queued_requests, mid.queued_bytes <= 128 * 1024 })
    local got = {}
    for i, raw in ipairs(push.got) do
      got[i] = raw:sub(1, 1)
    end
    -- a (being retried) went through; b, the oldest waiting, was dropped for d; z never queued
    assert.same({ "a", "c", "d", "y" }, got)
    assert.same({ 4, 2, 0 }, { info.sent_profiles, info.dropped_profiles, info.queued_bytes })
    assert.equals("unhealthy", health.state)
    assert.matches("2 profiles dropped from its queue", health.message, 1, true)
  end)

  it("gets mutex, block and memory profiles from pyroscope.scrape as deltas with __delta__ = \"false\", as Alloy",
    function()
      push.down, push.requests, push.got, push.labels = false, 0, {}, {}
      local file = proc.write(tmp .. "/s" .. math.random(1e9) .. ".lua", string.format([[
pyroscope.scrape "s" {
  targets         = { { __address__ = "%s" } },
  forward_to      = { pyroscope.write.w.receiver },
  scrape_interval = "200ms",
  profiling_config = { profile = {
    memory = { enabled = false }, block = { enabled = false }, goroutine = { enabled = false },
    process_cpu = { enabled = false },
  } },
}
pyroscope.write "w" {
  endpoint = { url = "http://%s", name = "ep" },
}
]], server:addr(), server:addr()))
      local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" .. math.random(1e9) })
      local ok, problems = ctrl:load(file)
      assert(ok, problems and table.concat(problems, "\n"))
      local sent = loop.run_until(function()
        return #push.got >= 2
      end, 5)
      ctrl:stop()
      assert.is_true(sent)
      -- the first scrape has nothing to be a delta of: not sent
      assert.is_true(target.hits >= #push.got + 1)
      assert.equals("false", push.labels[1].__delta__)
      assert.equals("mutex", push.labels[1].__name__)
      assert.truthy(pprof.check(push.got[1]))
    end)

  it("is unhealthy while the endpoint fails 3 attempts in a row, and healthy again once a push goes through",
    function()
      push.down, push.requests, push.got = true, 0, {}
      local ctrl, inst = start('min_backoff_period = "10ms", max_backoff_period = "20ms", max_backoff_retries = 0')
      local node = ctrl.nodes["pyroscope.write.w"]
      local function health()
        inst:refresh_health()
        return { state = node.health.state, message = node.health.message }
      end
      send_profile(inst, "p1")
      local failing = loop.run_until(function()
        return push.requests >= 3
      end, 5)
      local down = health()
      push.down = false
      local ok = loop.run_until(function()
        return #push.got == 1
      end, 5)
      local up, info = health(), inst:debug_info().endpoints[1]
      ctrl:stop()
      assert.is_true(failing and ok)
      assert.equals("unhealthy", down.state)
      assert.matches("failed attempts in a row; last error: unavailable: server returned HTTP status 503", down.message,
        1, true)
      assert.same({ state = "healthy", message = "sending again" }, up)
      assert.same({ 0, 1, 0, "" }, { info.failed_attempts_in_a_row, info.sent_profiles, info.dropped_profiles,
        info.last_error })
    end)

  it("keeps what an endpoint's queue holds across a reload that leaves its URL as it is", function()
    push.down, push.requests, push.got = true, 0, {}
    local ctrl, inst = start('min_backoff_period = "30ms", max_backoff_period = "30ms", max_backoff_retries = 0')
    send_profile(inst, "p1")
    send_profile(inst, "p2")
    local failing = loop.run_until(function()
      return push.requests >= 1
    end, 5)
    -- the same URL with other headers and backoff: the endpoint goes on with its queue
    local src = assert(io.open(ctrl.file)):read("*a")
    proc.write(ctrl.file, (src:gsub('max_backoff_retries = 0', 'max_backoff_retries = 0, headers = { ["X-A"] = "b" }')
      :gsub('"30ms"', '"20ms"')))
    local reloaded = ctrl:load()
    local same, after = ctrl.nodes["pyroscope.write.w"].instance == inst, inst:debug_info().endpoints[1]
    push.down = false
    local ok = loop.run_until(function()
      return #push.got == 2
    end, 5)
    local info = inst:debug_info().endpoints[1]
    ctrl:stop()
    assert.is_true(failing and reloaded and same and ok)
    assert.equals(2, after.queued_requests)
    assert.same({ "p1", "p2" }, push.got)
    assert.same({ 2, 0 }, { info.sent_profiles, info.dropped_profiles })
  end)

  it("is unhealthy for QUEUE_DROP_HEALTH seconds after its queue dropped requests, then healthy again", function()
    local max, hold = write.MAX_QUEUE, write.QUEUE_DROP_HEALTH
    write.MAX_QUEUE, write.QUEUE_DROP_HEALTH = 1, 0.2
    push.down, push.requests, push.got = false, 0, {}
    local ctrl, inst = start()
    local node = ctrl.nodes["pyroscope.write.w"]
    local function health()
      inst:refresh_health()
      return { state = node.health.state, message = node.health.message }
    end
    -- p1 is being sent (scheduler.wake runs the sender at once) while p2, p3, p4 arrive: p2 then p3
    -- make room for the next
    for i = 1, 4 do
      send_profile(inst, "p" .. i)
    end
    local dropped = health()
    local ok = loop.run_until(function()
      return #push.got == 2
    end, 5)
    loop.run_for(0.5)
    local after = health()
    write.MAX_QUEUE, write.QUEUE_DROP_HEALTH = max, hold
    ctrl:stop()
    assert.is_true(ok)
    assert.same({ "p1", "p4" }, push.got)
    assert.equals("unhealthy", dropped.state)
    assert.matches("2 profiles dropped from its queue", dropped.message, 1, true)
    assert.same({ state = "healthy", message = "sending again" }, after)
  end)

  it("sends what is queued at a stop while the endpoint is not failing (STOP_DRAIN)", function()
    push.down, push.requests, push.got = false, 0, {}
    local ctrl, inst = start()
    -- p1 is being sent (scheduler.wake runs the sender at once), p2 and p3 wait in the queue
    for i = 1, 3 do
      send_profile(inst, "p" .. i)
    end
    local queued = inst:debug_info().endpoints[1].queued_requests
    -- a graceful stop runs in a task
    local task = require("moonwatch.scheduler").spawn(function()
      ctrl:stop()
    end, { name = "stop" })
    local stopped = loop.run_until(function()
      return task.done
    end, 5)
    local info = inst:debug_info().endpoints[1]
    assert.is_true(stopped and task.ok, tostring(task.err))
    assert.equals(3, queued)
    assert.same({ "p1", "p2", "p3" }, push.got)
    assert.same({ 3, 0, 0 }, { info.sent_profiles, info.dropped_profiles, info.queued_requests })
  end)

  it("reads at most 64 KiB of a response body", function()
    push.down, push.requests, push.got, push.down_body = true, 0, {}, string.rep("e", 4 * 1024 * 1024)
    local ctrl, inst = start('min_backoff_period = "30ms", max_backoff_period = "30ms"')
    local ep = inst.endpoints.ep
    local request, sizes = ep.client.request, {}
    ep.client.request = function(c, req)
      local resp, err = request(c, req)
      sizes[#sizes + 1] = resp and #resp.body or -1
      return resp, err
    end
    send_profile(inst, "p1")
    local ok = loop.run_until(function()
      return #sizes >= 1
    end, 5)
    push.down, push.down_body = false, nil
    loop.run_until(function()
      return #push.got == 1
    end, 5)
    ctrl:stop()
    assert.is_true(ok)
    assert.equals(64 * 1024, sizes[1])
  end)
end)
