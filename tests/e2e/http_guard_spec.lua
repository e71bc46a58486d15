-- End-to-end: what a web page in a browser can make the HTTP server do. A link or an <img>
-- sends GET, so GET /-/reload does not reload (405; POST and PUT do, as in Prometheus); a
-- DNS-rebound name sends a foreign Host, refused with 403 whatever the path; a form or
-- fetch from another site sends an Origin that is not the Host, refused with 403.
local proc = require("helpers.proc")

local tmp = proc.tmpdir()
local PIPELINE = 'prometheus.exporter.self "self" {}\n'

local function reloads(h)
  local n = 0
  for _ in h.read():gmatch('msg="reloaded the pipeline"') do
    n = n + 1
  end
  return n
end

local function port_of(h)
  return h.read():match('msg="pipeline running".- http=%S+:(%d+)')
end

describe("HTTP server guards", function()
  local h, base, port

  setup(function()
    local file = proc.write(tmp .. "/guard.lua", PIPELINE)
    h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data" })
    base, port = h.base, port_of(h)
  end)

  teardown(function()
    h.kill("TERM")
    h.wait(10)
  end)

  it("does not reload on GET /-/reload: 405 with Allow, as for HEAD", function()
    local before = reloads(h)
    local status, body, headers = proc.http("GET", base .. "/-/reload")
    assert.equals(405, status)
    assert.equals("method not allowed\n", body)
    assert.matches("\nAllow: POST, PUT\r\n", headers, 1, true)
    assert.equals("405", proc.sh("curl -s -m 5 -I -o /dev/null -w '%{http_code}' " .. base .. "/-/reload"))
    os.execute("sleep 0.3")
    assert.equals(before, reloads(h))
  end)

  it("reloads on POST and PUT", function()
    local before = reloads(h)
    assert.equals(200, (proc.http("POST", base .. "/-/reload")))
    assert.equals(200, (proc.http("PUT", base .. "/-/reload")))
    assert.is_true(h.wait_log('msg="reloaded the pipeline"', 5))
    assert.equals(before + 2, reloads(h))
  end)

  it("refuses a foreign Host on every path with 403", function()
    for _, path in ipairs({ "/api/v0/components", "/api/v0/components/prometheus.exporter.self.self", "/metrics",
      "/-/ready", "/", "/nope" }) do
      local status, body = proc.http("GET", base .. path, { headers = { "Host: rebind.attacker.example:" .. port } })
      assert.equals(403, status, path)
      assert.equals('host "rebind.attacker.example:' .. port .. '" is not allowed; to serve it, start moonwatch '
        .. "with --server.http.allowed-hosts=rebind.attacker.example\n", body)
    end
    local before = reloads(h)
    assert.equals(403, (proc.http("POST", base .. "/-/reload", { headers = { "Host: rebind.attacker.example" } })))
    -- a Host that is an address, but not this one: not the listen address either
    assert.equals(403, (proc.http("GET", base .. "/metrics", { headers = { "Host: 10.1.2.3:" .. port } })))
    os.execute("sleep 0.3")
    assert.equals(before, reloads(h))
  end)

  it("serves localhost names and the listen address", function()
    for _, host in ipairs({ "127.0.0.1:" .. port, "localhost:" .. port, "LOCALHOST", "[::1]:" .. port,
      "127.0.0.5" }) do
      local status = proc.http("GET", base .. "/api/v0/components", { headers = { "Host: " .. host } })
      assert.equals(200, status, host)
    end
  end)

  it("refuses a cross-origin POST with 403 and takes a same-origin one", function()
    local before = reloads(h)
    for _, origin in ipairs({ "http://attacker.example", "null", "http://127.0.0.1:1",
      "http://localhost:" .. port }) do
      local status, body = proc.http("POST", base .. "/-/reload", { headers = { "Origin: " .. origin } })
      assert.equals(403, status, origin)
      assert.equals(string.format("cross-origin request from %q refused\n", origin), body)
    end
    os.execute("sleep 0.3")
    assert.equals(before, reloads(h))
    assert.equals(200, (proc.http("POST", base .. "/-/reload", { headers = { "Origin: http://127.0.0.1:" .. port } })))
    -- reading with GET from another origin is harmless (no CORS headers): served
    assert.equals(200, (proc.http("GET", base .. "/-/ready", { headers = { "Origin: http://attacker.example" } })))
  end)

  it("counts refusals in moonwatch_http_requests_refused_total", function()
    local _, body = proc.http("GET", base .. "/metrics")
    assert.is_true(tonumber(body:match('moonwatch_http_requests_refused_total{reason="host"} (%d+)')) >= 8)
    assert.is_true(tonumber(body:match('moonwatch_http_requests_refused_total{reason="origin"} (%d+)')) >= 4)
  end)
end)

describe("HTTP server guards with --server.http.allowed-hosts", function()
  local h, base, port

  setup(function()
    local file = proc.write(tmp .. "/allowed.lua", PIPELINE)
    h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-allowed",
      "--server.http.allowed-hosts=moonwatch.example, other.example:9999" })
    base, port = h.base, port_of(h)
  end)

  teardown(function()
    h.kill("TERM")
    h.wait(10)
  end)

  it("serves the names listed (any port) besides localhost, refuses others", function()
    for _, host in ipairs({ "moonwatch.example:" .. port, "moonwatch.example.", "Other.Example", "localhost" }) do
      assert.equals(200, (proc.http("GET", base .. "/api/v0/components", { headers = { "Host: " .. host } })), host)
    end
    assert.equals(403, (proc.http("GET", base .. "/api/v0/components", { headers = { "Host: third.example" } })))
    -- a page on an allowed name posting to that name is same-origin
    assert.equals(200, (proc.http("POST", base .. "/-/reload", {
      headers = { "Host: moonwatch.example:" .. port, "Origin: http://moonwatch.example:" .. port } })))
  end)
end)

describe("HTTP server guards on every address (0.0.0.0)", function()
  local h, base

  setup(function()
    local file = proc.write(tmp .. "/any.lua", PIPELINE)
    h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-any", "--server.http.listen-addr=0.0.0.0:0" })
    base = "http://127.0.0.1:" .. port_of(h)
  end)

  teardown(function()
    h.kill("TERM")
    h.wait(10)
  end)

  it("serves any address and the machine's host name, refuses other names", function()
    local f = io.open("/proc/sys/kernel/hostname")
    local hostname = f:read("*l")
    f:close()
    for _, host in ipairs({ "10.1.2.3:8080", "[fd00::1]", "192.168.0.7", hostname, "localhost" }) do
      assert.equals(200, (proc.http("GET", base .. "/-/ready", { headers = { "Host: " .. host } })), host)
    end
    assert.equals(403, (proc.http("GET", base .. "/-/ready", { headers = { "Host: attacker.example" } })))
  end)

  it("a bad --server.http.allowed-hosts entry stops the start with exit code 2", function()
    local code, _, err = proc.run({ "run", "--server.http.allowed-hosts=ok.example,http://x/", tmp .. "/any.lua" })
    assert.equals(2, code)
    assert.matches('--server.http.allowed-hosts: "http://x/" is not a host name or address', err, 1, true)
  end)
end)
