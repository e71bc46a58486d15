-- End-to-end: the self-monitoring guide's profiling pipeline (reference 004, section 4) written in
-- Lua: moonwatch scrapes its own /debug/pprof with pyroscope.scrape and ships the profiles with
-- pyroscope.write to a strict Pyroscope push receiver (tests/e2e/fixtures/pyroscope_receiver.lua:
-- push.proto decoded with protobuf-c, every profile checked), through `moonwatch run`.
local proc = require("helpers.proc")
local pprof = require("helpers.pprof")
local cjson = require("cjson")

local tmp = proc.tmpdir()

local function receiver_get(port, what)
  local status, body = proc.http("GET", "http://127.0.0.1:" .. port .. "/" .. what)
  assert(status == 200, "receiver answered " .. tostring(status))
  return cjson.decode(body)[what]
end

local function start_receiver()
  local port = proc.free_port()
  local dir = tmp .. "/profiles-" .. port
  os.execute("mkdir -p " .. dir)
  proc.spawn(string.format("%s lua %s/tests/e2e/fixtures/pyroscope_receiver.lua %d %s", proc.quote(proc.bin),
    proc.source, port, dir), tmp .. "/receiver-" .. port .. ".log")
  proc.wait_http("http://127.0.0.1:" .. port .. "/ready")
  return port
end

local function components(h, id)
  local _, body = proc.http("GET", h.base .. "/api/v0/components/" .. id)
  return cjson.decode(body)
end

describe("pyroscope.scrape -> pyroscope.write (the self-monitoring guide's profiling pipeline)", function()
  local h, rport, port

  setup(function()
    assert(pprof.tool())
    rport = start_receiver()
    port = proc.free_port()
    local file = proc.write(tmp .. "/profiling.lua", string.format([[
pyroscope.scrape "alloy_profiling" {
  targets = {
    { __address__ = "127.0.0.1:%d", job = "moonwatch" },
  },
  forward_to      = { pyroscope.write.pyroscope_endpoint.receiver },
  -- the defaults are 15s and a CPU profile of 14s: kept short for the test (as in Alloy, the
  -- profile's duration must then be set too)
  scrape_interval          = "3s",
  delta_profiling_duration = "2s",
}

pyroscope.write "pyroscope_endpoint" {
  endpoint = {
    url                = "http://127.0.0.1:%d",
    headers            = { ["X-Custom"] = "yes" },
    min_backoff_period = "100ms",
  },
  external_labels = { cluster = "test" },
}
]], port, rport))
    h = proc.start({ "run", "--server.http.listen-addr=127.0.0.1:" .. port, "--storage.path=" .. tmp .. "/data",
      file })
    assert(h.wait_log("pipeline running", 10), h.read())
    h.base = "http://127.0.0.1:" .. port
  end)

  teardown(function()
    h.kill("TERM")
    h.wait(10)
    proc.kill_spawned()
  end)

  it("ships every default profile type of moonwatch itself, with Alloy's labels, as pprof reads them", function()
    local by_type
    proc.wait_for(function()
      by_type = {}
      for _, s in ipairs(receiver_get(rport, "series")) do
        by_type[s.labels.__name__] = s
      end
      return by_type.process_cpu and by_type.memory and by_type.goroutine and by_type.block and by_type.mutex
    end, 30, "the five default profile types")
    for name, s in pairs(by_type) do
      -- memory, block and mutex are cumulative: sent as deltas, as Alloy
      local delta = (name == "memory" or name == "block" or name == "mutex") and "false" or nil
      assert.same({ __name__ = name, service_name = "unspecified", job = "moonwatch",
        instance = "127.0.0.1:" .. port, cluster = "test", __delta__ = delta }, s.labels)
      local out, ok = pprof.run("-raw", s.file)
      assert.is_true(ok, name .. ": " .. out)
    end
    local out = pprof.run("-top", by_type.process_cpu.file)
    assert.matches("Type: cpu", out, 1, true)
    out = pprof.run("-top", by_type.goroutine.file)
    assert.matches("Type: goroutine", out, 1, true)
    local req = receiver_get(rport, "requests")[1]
    assert.equals("application/proto", req.content_type)
    assert.equals("1", req.connect_protocol_version)
    assert.equals("yes", req.custom)
    assert.matches("^moonwatch/", req.user_agent)
    assert.is_true(proc.metric(h, "pyroscope_write_sent_profiles_total") >= 5)
    assert.is_true(proc.metric(h, "pyroscope_write_sent_bytes_total") > 0)
    assert.is_true(proc.metric(h, "moonwatch_pyroscope_scrape_profiles_total", 'profile="process_cpu"') >= 1)
    assert.is_true(proc.metric(h, "pyroscope_fanout_latency_count") >= 5)
  end)

  it("asks for CPU profiles of scrape_interval - 1s and shows each target in its debug info", function()
    local info = components(h, "pyroscope.scrape.alloy_profiling").debug_info
    local urls = {}
    for _, t in ipairs(info.target_status) do
      urls[t.url] = t.health
    end
    assert.equals("up", urls["http://127.0.0.1:" .. port .. "/debug/pprof/profile?seconds=2"])
    assert.equals("up", urls["http://127.0.0.1:" .. port .. "/debug/pprof/allocs"])
  end)

  it("retries what Connect retries and drops what it refuses, counting both", function()
    assert.equals(200, (proc.http("POST", "http://127.0.0.1:" .. rport .. "/control?plan=503,400")))
    proc.wait_for(function()
      return proc.metric(h, "pyroscope_write_retries_total") >= 1
        and proc.metric(h, "pyroscope_write_dropped_profiles_total") >= 1
    end, 20, "a retry and a drop")
    local before = proc.metric(h, "pyroscope_write_sent_profiles_total")
    proc.wait_for(function()
      return proc.metric(h, "pyroscope_write_sent_profiles_total") > before
    end, 20, "sending again")
  end)
end)

-- A pipeline of test.profilesource "s" (profiles: Lua text) into pyroscope.write "w" (its
-- arguments: Lua text), run with the suite's fixture components.
local FIXTURES = proc.source .. "/tests/lua/fixtures/components"

local function run_write(name, profiles_text, write_args)
  local file = proc.write(tmp .. "/" .. name .. ".lua", string.format([[
test.profilesource "s" {
  profiles   = %s,
  forward_to = { pyroscope.write.w.receiver },
}
pyroscope.write "w" {
%s
}
]], profiles_text, write_args))
  local h = proc.start_run(file, { "--component.path=" .. FIXTURES, "--storage.path=" .. tmp .. "/data-" .. name })
  return h, file
end

describe("pyroscope.write's headers, queue and stops", function()
  local handles = {}
  teardown(function()
    for _, x in ipairs(handles) do
      x.kill("KILL")
    end
  end)

  it("sends the Connect protocol's headers whatever the custom headers say; a custom Authorization replaces"
    .. " basic_auth's and bearer_token's, as Alloy's", function()
    local rp = start_receiver()
    local h = run_write("hdrs", "{ {} }", string.format([[
  endpoint = {
    {
      url = "http://127.0.0.1:%d", name = "exact", bearer_token = "tok",
      headers = { ["Content-Type"] = "application/json", ["Connect-Protocol-Version"] = "2",
        ["Connect-Timeout-Ms"] = "1", ["Content-Encoding"] = "gzip", Authorization = "Custom c", ["X-Custom"] = "yes" },
    },
    {
      url = "http://127.0.0.1:%d", name = "lower", basic_auth = { username = "u", password = "p" },
      headers = { ["content-type"] = "text/plain", ["connect-protocol-version"] = "7",
        ["content-encoding"] = "br", authorization = "Custom d" },
    },
  },]], rp, rp))
    handles[#handles + 1] = h
    local reqs = proc.wait_for(function()
      local r = receiver_get(rp, "requests")
      return #r >= 2 and r
    end, 10, "two push requests")
    h.kill("KILL")
    local by_auth = {}
    for _, r in ipairs(reqs) do
      by_auth[r.authorization] = r
    end
    for auth, custom in pairs({ ["Custom c"] = "yes", ["Custom d"] = "" }) do
      local r = by_auth[auth]
      assert.is_table(r, "no request with Authorization " .. auth .. ": " .. cjson.encode(reqs))
      assert.same({ 200, "application/proto", "1", "10000", "", custom },
        { r.status, r.content_type, r.connect_protocol_version, r.connect_timeout_ms, r.content_encoding, r.custom })
    end
  end)

  it("bounds each endpoint's queue by queue.max_size, counting and reporting what it drops; a stop drops what"
    .. " is queued, counted and logged, without waiting for a failing endpoint", function()
    -- nothing listens on the endpoint's port: the first attempt fails, the next is a minute away
    local h = run_write("bytes", "{ " .. string.rep("{ size = 300 * 1024 }, ", 10) .. "}", string.format([[
  endpoint = { url = "http://127.0.0.1:%d", name = "down", min_backoff_period = "1m", max_backoff_period = "1m" },
  queue    = { max_size = "1MiB" },]], proc.free_port()))
    handles[#handles + 1] = h
    -- 10 requests of ~300 KiB: 3 fit in 1 MiB, the 7 oldest waiting are dropped
    proc.wait_for(function()
      return proc.metric(h, "pyroscope_write_dropped_profiles_total", 'reason="queue_bytes"') == 7
    end, 10, "7 profiles dropped for the queue's bytes")
    local info = components(h, "pyroscope.write.w")
    local ep = info.debug_info.endpoints[1]
    assert.equals(3, ep.queued_requests)
    assert.is_true(ep.queued_bytes <= 1024 * 1024 and ep.queued_bytes >= 3 * 300 * 1024, tostring(ep.queued_bytes))
    assert.equals(0, proc.metric(h, "pyroscope_write_dropped_profiles_total", 'reason="queue_full"'))
    assert.equals(7 * 300 * 1024, proc.metric(h, "pyroscope_write_dropped_bytes_total", 'reason="queue_bytes"'))
    local hl = proc.wait_for(function()
      local x = components(h, "pyroscope.write.w").health
      return x.state == "unhealthy" and x
    end, 5, "unhealthy")
    assert.matches("endpoint down %(http://127%.0%.0%.1:%d+%): 7 profiles dropped from its queue since ", hl.message)
    assert.matches("queue over its max_size (1048576 bytes)", hl.message, 1, true)
    -- a stop: the 3 queued are dropped and logged in one line, at once (the endpoint is failing)
    local t0 = os.time()
    h.kill("TERM")
    assert.equals(0, h.wait(10))
    assert.is_true(os.time() - t0 <= 3, "stopping took " .. (os.time() - t0) .. " s")
    local line = h.read():match('[^\n]*msg="stopping with profiles not sent; they are dropped"[^\n]*')
    assert.is_string(line, h.read())
    assert.matches("endpoint=down", line, 1, true)
    assert.matches("profiles=3 ", line .. " ", 1, true)
  end)

  it("drops and counts what an endpoint's queue holds when a reload changes its URL", function()
    local down = proc.free_port()
    local write_args = [[
  endpoint = { url = "http://127.0.0.1:%d", name = "ep", min_backoff_period = "1m", max_backoff_period = "1m" },]]
    local h, file = run_write("reload", "{ {}, {} }", string.format(write_args, down))
    handles[#handles + 1] = h
    proc.wait_for(function()
      return components(h, "pyroscope.write.w").debug_info.endpoints[1].queued_requests == 2
    end, 10, "2 requests queued")
    local src = proc.read_file(file)
    proc.write(file, (src:gsub("127%.0%.0%.1:" .. down, "127.0.0.1:" .. proc.free_port())))
    assert.equals(200, (proc.http("POST", h.base .. "/-/reload")))
    local old = 'endpoint="http://127.0.0.1:' .. down .. '"'
    assert.equals(2, proc.metric(h, "pyroscope_write_dropped_profiles_total", old .. ',reason="stopped"'))
    proc.wait_for(function()
      return h.read():find('msg="stopping with profiles not sent; they are dropped" endpoint=ep profiles=2 requests=2',
        1, true)
    end, 5, "the line logged for the dropped requests")
    h.kill("KILL")
  end)
end)

describe("pyroscope components' configuration", function()
  local function check(src)
    local f = proc.write(tmp .. "/check.lua", src)
    local code, out, err = proc.run({ "check", f })
    return code, out .. err
  end

  it("refuses a metrics receiver in pyroscope.scrape's forward_to, naming file and line", function()
    local code, out = check([[
prometheus.remote_write "rw" { endpoint = { url = "http://127.0.0.1:9/api/v1/write" } }
pyroscope.scrape "s" {
  targets    = { { __address__ = "127.0.0.1:12345" } },
  forward_to = { prometheus.remote_write.rw.receiver },
}
]])
    assert.is_not.equals(0, code)
    assert.matches("check.lua:2: pyroscope.scrape \"s\": forward_to: element 1: expected a profiles receiver", out,
      1, true)
  end)

  it("refuses delta profiles with a scrape_interval under 2s", function()
    local code, out = check([[
pyroscope.scrape "s" {
  targets         = { { __address__ = "127.0.0.1:12345" } },
  forward_to      = {},
  scrape_interval = "1s",
}
]])
    assert.is_not.equals(0, code)
    assert.matches("scrape_interval must be at least 2 seconds when using delta profiling", out, 1, true)
  end)
end)
