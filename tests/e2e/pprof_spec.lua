-- End-to-end: /debug/pprof of a running moonwatch, read by the real pprof tool.
local proc = require("helpers.proc")
local pprof = require("helpers.pprof")

local tmp = proc.tmpdir()

-- A pipeline with a slow Lua function rule: the relabel cache holds one result, so the rule
-- runs for nearly every series of every scrape (about 1 ms each).
local PIPELINE = [[
local function burn_cpu(labels)
  local x = 0
  for i = 1, 20000 do
    x = x + math.sin(i)
  end
  labels.burnt = tostring(x > 0)
  return labels
end

prometheus.exporter.self "default" {}

prometheus.scrape "self" {
  targets         = prometheus.exporter.self.default.targets,
  forward_to      = { prometheus.relabel.burn.receiver },
  scrape_interval = "1s",
  scrape_timeout  = "1s",
}

-- a target whose address carries credentials: they must not show in the task view
prometheus.scrape "creds" {
  targets    = { { __address__ = "user:hunter2@127.0.0.1:9" } },
  forward_to = {},
}

prometheus.relabel "burn" {
  forward_to     = {},
  rule           = { burn_cpu },
  max_cache_size = 1,
}
]]

-- Whether the process has a SIGPROF handler (SigCgt bit 27 of /proc/PID/status).
local function catches_sigprof(pid)
  local status = proc.read_file("/proc/" .. pid .. "/status")
  local hex = assert(status:match("SigCgt:%s*(%x+)"))
  local low = tonumber(hex:sub(-8), 16)
  return math.floor(low / 2 ^ 26) % 2 == 1
end

local function get(h, path, opts)
  return proc.http("GET", h.base .. path, opts)
end

local function save(name, body)
  return proc.write(tmp .. "/" .. name, body)
end

describe("/debug/pprof", function()
  local h

  setup(function()
    assert(pprof.tool())
    local file = proc.write(tmp .. "/pipeline.lua", PIPELINE)
    h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data" })
  end)

  teardown(function()
    h.kill("TERM")
    h.wait(10)
  end)

  it("lists the profiles on its index page", function()
    local status, body, headers = get(h, "/debug/pprof/")
    assert.equals(200, status)
    assert.matches("Content%-Type: text/html", headers)
    for _, name in ipairs({ "allocs", "block", "cmdline", "goroutine", "heap", "mutex", "profile", "symbol" }) do
      assert.matches('href="' .. name .. '?debug=1"', body, 1, true)
    end
  end)

  it("samples nothing unless a CPU profile is being taken", function()
    assert.is_false(catches_sigprof(h.pid))
  end)

  it("serves a CPU profile where a slow Lua function rule shows by name, file and line", function()
    local status, body, headers = get(h, "/debug/pprof/profile?seconds=3")
    assert.equals(200, status)
    assert.matches("Content%-Type: application/octet%-stream", headers)
    assert.matches('Content%-Disposition: attachment; filename="profile"', headers)
    local file = save("cpu.pb.gz", body)
    local out, ok = pprof.run("-top", file)
    assert.is_true(ok, out)
    assert.matches("Type: cpu", out, 1, true)
    assert.matches("burn_cpu", out, 1, true)
    -- ticks in JIT-compiled code (anonymous executable mappings) carry their Lua stack too
    local jit_flat = tonumber(out:match("\n%s*[%d.]+m?s%s+([%d.]+)%%[^\n]*%[LuaJIT compiled code%]\n") or "0")
    assert.is_true(jit_flat < 5, "ticks in compiled code without a Lua stack: " .. jit_flat .. "%\n" .. out)
    -- Lua frames (file:line of the pipeline) merged with the C frames below the VM
    out, ok = pprof.run("-traces", file)
    assert.is_true(ok, out)
    local merged
    for trace in out:gmatch("%-%-%-%-%-%-%-%-%-%-%-+%+%-+\n(.-)\n%-%-%-") do
      if trace:find("burn_cpu", 1, true) and trace:find("ev_run", 1, true) then
        merged = true
      end
    end
    assert.is_true(merged, "no stack with both burn_cpu and ev_run:\n" .. out)
    out = pprof.run("-top -lines", file)
    assert.matches("burn_cpu [^\n]*pipeline%.lua:%d+", out)
    out, ok = pprof.run("-raw", file)
    assert.is_true(ok, out)
    assert.matches("PeriodType: cpu nanoseconds", out, 1, true)
    -- and the handler is gone once the profile is taken
    assert.is_false(catches_sigprof(h.pid))
  end)

  it("takes one CPU profile at a time and bounds its duration", function()
    local first = io.popen("curl -s -o /dev/null -w '%{http_code}' '" .. h.base .. "/debug/pprof/profile?seconds=2'")
    os.execute("sleep 0.5")
    local status, body, headers = get(h, "/debug/pprof/profile?seconds=1")
    assert.equals(500, status)
    assert.equals("Could not enable CPU profiling: cpu profiling already in use\n", body)
    assert.matches("X%-Go%-Pprof: 1", headers)
    assert.equals("200", first:read("*a"))
    first:close()
    status, body = get(h, "/debug/pprof/profile?seconds=3600")
    assert.equals(400, status)
    assert.matches("profile duration exceeds", body, 1, true)
  end)

  it("serves heap and allocs profiles of the Lua heap and the C heap", function()
    for _, name in ipairs({ "heap", "allocs" }) do
      local status, body, headers = get(h, "/debug/pprof/" .. name .. "?gc=1")
      assert.equals(200, status)
      assert.matches('filename="' .. name .. '"', headers, 1, true)
      local out, ok = pprof.run("-top", save(name .. ".pb.gz", body))
      assert.is_true(ok, out)
      assert.matches(name == "heap" and "Type: inuse_space" or "Type: alloc_space", out, 1, true)
      assert.matches("[Lua heap]", out, 1, true)
      if not out:find("C heap: not measured (malloc is not glibc's here", 1, true) then -- under ASan
        assert.matches("[C heap: malloc chunks]", out, 1, true)
      end
    end
    local status, body = get(h, "/debug/pprof/heap?debug=1")
    assert.equals(200, status)
    assert.matches("^heap profile: Lua heap %d+ bytes", body)
  end)

  it("serves empty block and mutex profiles (the Lua thread takes no lock), as Go does by default", function()
    for _, name in ipairs({ "block", "mutex" }) do
      local status, body = get(h, "/debug/pprof/" .. name)
      assert.equals(200, status)
      local out, ok = pprof.run("-raw", save(name .. ".pb.gz", body))
      assert.is_true(ok, out)
      assert.matches("contentions/count delay/nanoseconds", out, 1, true)
    end
  end)

  it("shows the Lua tasks of the components where Go shows goroutines", function()
    local status, body = get(h, "/debug/pprof/goroutine")
    assert.equals(200, status)
    local file = save("goroutine.pb.gz", body)
    local out, ok = pprof.run("-top", file)
    assert.is_true(ok, out)
    assert.matches("Type: goroutine", out, 1, true)
    out = pprof.run("-tags", file)
    assert.matches("component_id:.*prometheus%.scrape%.self", out)
    status, body = get(h, "/debug/pprof/goroutine?debug=1")
    assert.equals(200, status)
    assert.matches("^task profile: total %d+\n", body)
    assert.matches("%[sleep, in Instance:run_target [^\n]*stdlib/prometheus/scrape%.lua:%d+%]: scrape [^\n]*"
      .. "%(component prometheus%.scrape%.self%)\n", body)
    assert.matches("(component prometheus.scrape.creds)", body, 1, true)
    assert.is_nil(body:find("hunter2", 1, true), body)
    body = select(2, get(h, "/debug/pprof/goroutine"))
    assert.is_nil(proc.sh("gzip -dc < " .. proc.quote(save("g2.pb.gz", body))):find("hunter2", 1, true))
  end)

  it("serves cmdline and symbol as Go does", function()
    local status, body = get(h, "/debug/pprof/cmdline")
    assert.equals(200, status)
    assert.matches("moonwatch%zrun%z", body)
    status, body = get(h, "/debug/pprof/symbol")
    assert.equals(200, status)
    assert.equals("num_symbols: 1\n", body)
    -- an address of the CPU profile's mw_ function, looked up back
    local raw = pprof.run("-raw", tmp .. "/cpu.pb.gz")
    local addr, name = raw:match("\n%s*%d+: (0x%x+) M=%d+ (mw_[%w_]+) ")
    assert.is_truthy(addr, raw)
    status, body = proc.http("POST", h.base .. "/debug/pprof/symbol", { body = addr })
    assert.equals(200, status)
    assert.matches(" " .. name .. "\n", body, 1, true)
  end)

  it("answers 404 for an unknown profile and 403 to a foreign Host", function()
    local status, body = get(h, "/debug/pprof/nope")
    assert.equals(404, status)
    assert.equals("Unknown profile\n", body)
    status = get(h, "/debug/pprof/heap", { headers = { "Host: rebind.attacker.example" } })
    assert.equals(403, status)
  end)
end)
