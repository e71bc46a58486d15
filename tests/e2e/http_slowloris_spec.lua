-- End-to-end: slow clients cannot take the HTTP server down. 1,100 connections that send
-- a header line every second and never finish their request head (slowloris) leave
-- /-/ready and /metrics answering: one address gets --server.http.max-connections-per-ip
-- connections, and a request head must be complete within
-- --server.http.read-header-timeout however often bytes arrive.
local proc = require("helpers.proc")
local cjson = require("cjson")

local tmp = proc.tmpdir()
local SLOWLORIS = proc.source .. "/tests/e2e/fixtures/slowloris.py"
local PIPELINE = 'prometheus.exporter.self "self" {}\n'

-- Starts the attacker: n sockets, one header line every second, from the addresses given.
local function attack(h, n, sources)
  local status = os.tmpname()
  os.remove(status)
  local port = h.base:match(":(%d+)$")
  proc.spawn(string.format("python3 %s 127.0.0.1 %s %d 1 %s %s", proc.quote(SLOWLORIS), port, n, status,
    table.concat(sources, " ")))
  return function()
    local f = io.open(status)
    local s = f and f:read("*a")
    if f then
      f:close()
    end
    return s and s ~= "" and cjson.decode(s) or nil
  end
end

local function wait_for(pred, timeout)
  local deadline = os.time() + timeout
  repeat
    local v = pred()
    if v then
      return v
    end
    os.execute("sleep 0.2")
  until os.time() > deadline
  return nil
end

-- /-/ready and /metrics answer within 3 s, a few times over a couple of seconds.
local function assert_answering(h)
  for _ = 1, 4 do
    local t0 = os.time()
    local status, body = proc.http("GET", h.base .. "/-/ready")
    assert.equals(200, status, "/-/ready during the attack")
    assert.equals("Moonwatch is ready.\n", body)
    status, body = proc.http("GET", h.base .. "/metrics")
    assert.equals(200, status, "/metrics during the attack")
    assert.truthy(body:find("moonwatch_build_info", 1, true))
    assert.is_true(os.time() - t0 <= 3)
    os.execute("sleep 0.5")
  end
end

local function metric(h, name)
  local _, body = proc.http("GET", h.base .. "/metrics")
  return tonumber(body:match("\n" .. name .. " (%S+)"))
end

describe("HTTP server under a slowloris attack", function()
  local h

  after_each(function()
    proc.kill_spawned()
    if h then
      h.kill("TERM")
      h.wait(10)
      h = nil
    end
  end)

  it("keeps /-/ready and /metrics answering while 1,100 slow connections come from one address", function()
    local file = proc.write(tmp .. "/one.lua", PIPELINE)
    h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-one" })
    local stats = attack(h, 1100, { "127.0.0.2" })
    -- every socket connected at least once (the server refuses those past the per-address cap)
    assert.truthy(wait_for(function()
      local s = stats()
      return s and s.opened + s.refused >= 1100
    end, 15), "the attacker did not get going")
    assert_answering(h)
    local s = stats()
    -- counted on the server's side: the attacker also counts connections the kernel completed
    -- in the listen backlog that the server has not accepted (and closed) yet
    local held = tonumber(proc.sh(string.format("ls -l /proc/%d/fd 2>/dev/null | grep -c 'socket:'", h.pid)))
    assert.is_true(held <= 64 + 16, "moonwatch holds " .. held .. " sockets (one address may hold 64)")
    assert.is_true(s.open >= 64, "the attacker holds " .. s.open .. " connections")
    assert.is_true(s.closed_by_server > 0)
    -- when the attack ends, the address gets its slots back: a normal request from it is
    -- served, and the server holds no more sockets than before
    proc.kill_spawned()
    local port = h.base:match(":(%d+)$")
    local served = wait_for(function()
      return proc.sh(string.format([[python3 -c '
import socket
s = socket.socket(); s.settimeout(3); s.bind(("127.0.0.2", 0)); s.connect(("127.0.0.1", %s))
s.sendall(b"GET /-/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
print(s.recv(4096).split(b"\r\n")[0].decode())
' 2>/dev/null]], port)) == "HTTP/1.1 200 OK\n"
    end, 15)
    assert.truthy(served, "the attacking address is still refused after the attack")
    assert.truthy(wait_for(function()
      return tonumber(proc.sh(string.format("ls -l /proc/%d/fd 2>/dev/null | grep -c 'socket:'", h.pid))) <= 16
    end, 15), "sockets still held after the attack")
  end)

  it("closes connections whose request head is not in within --server.http.read-header-timeout", function()
    local file = proc.write(tmp .. "/many.lua", PIPELINE)
    h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-many", "--server.http.read-header-timeout=2s" })
    -- 1,100 connections from 25 addresses: each address stays under the per-address cap
    local sources = {}
    for i = 1, 25 do
      sources[i] = "127.0.1." .. i
    end
    local stats = attack(h, 1100, sources)
    assert.truthy(wait_for(function()
      local s = stats()
      return s and s.opened >= 1100
    end, 15), "the attacker did not get going")
    assert_answering(h)
    -- each sent a line every second, and still the server closed it after 2 s
    local s = wait_for(function()
      local st = stats()
      return st and st.closed_by_server >= 1100 and st
    end, 10)
    assert.truthy(s, "slow connections kept open: " .. cjson.encode(stats()))
    -- the attacker also counts as closed by the server the connections the per-address cap
    -- turned away while it reconnected: the server's own count catches up a little later
    local timeouts = wait_for(function()
      local n = metric(h, "moonwatch_http_request_head_timeouts_total")
      return n and n >= 1100 and n
    end, 10)
    assert.truthy(timeouts, "head timeouts counted: " .. tostring(metric(h, "moonwatch_http_request_head_timeouts_total")))
  end)

  it("serves a client that sends its head slowly but within the timeout", function()
    local file = proc.write(tmp .. "/slow.lua", PIPELINE)
    h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-slow", "--server.http.read-header-timeout=3s" })
    local port = h.base:match(":(%d+)$")
    local out = proc.sh(string.format([[python3 -c '
import socket, time
s = socket.create_connection(("127.0.0.1", %s))
for line in [b"GET /-/ready HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"X-Slow: 1\r\n", b"\r\n"]:
    s.send(line); time.sleep(0.5)
print(s.recv(4096).split(b"\r\n")[0].decode())
']], port))
    assert.equals("HTTP/1.1 200 OK\n", out)
  end)

  it("raises the open-files soft limit to the hard one, as Go programs do", function()
    local hard = tonumber(proc.sh("sh -c 'ulimit -Hn'"))
    if not hard or hard <= 1024 then
      pending("the hard open-files limit is " .. tostring(hard))
      return
    end
    local want = math.min(hard, 1048576)
    local file = proc.write(tmp .. "/nofile.lua", PIPELINE)
    h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-nofile" },
      { env = "prlimit --nofile=1024:" .. hard })
    local f = assert(io.open("/proc/" .. h.pid .. "/limits"))
    local limits = f:read("*a")
    f:close()
    assert.matches("Max open files%s+" .. want .. "%s+" .. hard, limits)
  end)

  it("refuses bad limits at start with exit code 2", function()
    local file = proc.write(tmp .. "/flags.lua", PIPELINE)
    local code, _, err = proc.run({ "run", "--server.http.read-header-timeout=soon", file })
    assert.equals(2, code)
    assert.matches("--server.http.read-header-timeout: ", err, 1, true)
    code, _, err = proc.run({ "run", "--server.http.max-connections-per-ip=-1", file })
    assert.equals(2, code)
    assert.matches('--server.http.max-connections-per-ip: expected an integer >= 0, got "-1"', err, 1, true)
    code, _, err = proc.run({ "run", "--server.http.max-connections=0", file })
    assert.equals(2, code)
    assert.matches('--server.http.max-connections: expected an integer >= 1, got "0"', err, 1, true)
  end)
end)
