--- helpers.proc: starts the moonwatch binary for end-to-end specs.
local M = {}

M.bin = os.getenv("MOONWATCH_BIN") or "build/moonwatch"
M.source = os.getenv("MOONWATCH_SOURCE_DIR") or "."

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = shell_quote

--- The exit code from os.execute's result (LuaJIT returns the wait status).
function M.exit_code(r, _, c)
  if type(c) == "number" then
    return c
  end
  if type(r) == "number" and r > 255 then
    return math.floor(r / 256)
  end
  return r
end

--- Runs moonwatch with args to completion; returns exit code, stdout, stderr.
function M.run(args, opts)
  opts = opts or {}
  local out, err = os.tmpname(), os.tmpname()
  local cmd = { shell_quote(M.bin) }
  for _, a in ipairs(args) do
    cmd[#cmd + 1] = shell_quote(a)
  end
  local line = (opts.env or "") .. " " .. table.concat(cmd, " ") .. " >" .. out .. " 2>" .. err .. " </dev/null"
  local code = M.exit_code(os.execute(line))
  local function slurp(p)
    local f = io.open(p)
    local s = f:read("*a")
    f:close()
    os.remove(p)
    return s
  end
  return code, slurp(out), slurp(err)
end

--- Starts moonwatch in the background; returns a handle with pid, stderr path, kill, wait.
--- opts: env ("NAME=value ..." before the command), cwd (its working directory).
function M.start(args, opts)
  opts = opts or {}
  local h = { out = os.tmpname(), err = os.tmpname(), rc = os.tmpname() }
  local cmd = { shell_quote(M.bin) }
  for _, a in ipairs(args) do
    cmd[#cmd + 1] = shell_quote(a)
  end
  h.pidfile = os.tmpname()
  os.remove(h.rc)
  os.remove(h.pidfile)
  local line = string.format("(%s%s sh -c 'echo $$ > %s; exec \"$@\"' sh %s >%s 2>%s </dev/null; echo $? > %s) &",
    opts.cwd and ("cd " .. shell_quote(opts.cwd) .. " && ") or "", opts.env or "", h.pidfile, table.concat(cmd, " "),
    h.out, h.err, h.rc)
  os.execute(line)
  for _ = 1, 200 do
    local f = io.open(h.pidfile)
    local pid = f and tonumber(f:read("*l") or "")
    if f then
      f:close()
    end
    if pid then
      h.pid = pid
      break
    end
    os.execute("sleep 0.01")
  end
  assert(h.pid, "moonwatch did not start")
  function h.kill(sig)
    os.execute(string.format("kill -%s %d 2>/dev/null", sig or "TERM", h.pid))
  end
  function h.read(which)
    local f = io.open(h[which or "err"])
    local s = f and f:read("*a") or ""
    if f then
      f:close()
    end
    return s
  end
  --- Waits up to timeout seconds for exit; returns the exit code or nil.
  function h.wait(timeout)
    local deadline = os.time() + (timeout or 10)
    repeat
      local f = io.open(h.rc)
      if f then
        local s = f:read("*l")
        f:close()
        if s and s ~= "" then
          return tonumber(s)
        end
      end
      os.execute("sleep 0.05")
    until os.time() > deadline
    return nil
  end
  --- Waits until the stderr log contains `pattern` (plain text).
  function h.wait_log(pattern, timeout)
    local deadline = os.time() + (timeout or 10)
    repeat
      if h.read("err"):find(pattern, 1, true) then
        return true
      end
      os.execute("sleep 0.05")
    until os.time() > deadline
    return false
  end
  return h
end

--- The content of a file ("" when it cannot be read).
function M.read_file(path)
  local f = io.open(path, "rb")
  local s = f and f:read("*a") or ""
  if f then
    f:close()
  end
  return s
end

--- Polls pred every 50 ms until it returns a true value (returned), for up to timeout seconds
--- (default 10). On timeout: raises "timed out waiting for <what>" when what is given, else
--- returns false.
---@param pred fun(): any
---@param timeout number|nil
---@param what string|nil
function M.wait_for(pred, timeout, what)
  local deadline = os.time() + (timeout or 10)
  repeat
    local v = pred()
    if v then
      return v
    end
    os.execute("sleep 0.05")
  until os.time() > deadline
  if what then
    error("timed out waiting for " .. what, 2)
  end
  return false
end

--- The sum of a metric's series in h's /metrics (those whose labels contain label, if given).
function M.metric(h, name, label)
  local _, body = M.http("GET", h.base .. "/metrics")
  local total = 0
  for ls, v in body:gmatch("\n" .. name .. "{([^}]*)} ([^\n]+)") do
    if not label or ls:find(label, 1, true) then
      total = total + tonumber(v)
    end
  end
  return total
end

--- Writes a file and returns its path.
function M.write(path, content)
  local f = assert(io.open(path, "w"))
  f:write(content)
  f:close()
  return path
end

--- Writes a file by renaming a complete copy over it (a watcher never sees half of it).
function M.write_atomic(path, content)
  M.write(path .. ".tmp", content)
  assert(os.rename(path .. ".tmp", path))
  return path
end

--- A component's answer of the debug API (/api/v0/components/ID), decoded.
---@param h table a moonwatch started by M.start_run
---@param id string
function M.component(h, id)
  local status, body = M.http("GET", h.base .. "/api/v0/components/" .. id)
  if status ~= 200 then
    error(string.format("GET /api/v0/components/%s: status %s: %s", id, tostring(status), tostring(body)), 2)
  end
  return require("cjson").decode(body)
end

--- Targets (maps of labels) as sorted "name=value,name=value" strings, sorted: comparable
--- with assert.same.
function M.target_strings(list)
  local out = {}
  for _, t in ipairs(list) do
    local kv = {}
    for k, v in pairs(t) do
      kv[#kv + 1] = k .. "=" .. v
    end
    table.sort(kv)
    out[#out + 1] = table.concat(kv, ",")
  end
  table.sort(out)
  return out
end

--- An HTTP request with the curl command line tool; returns status, body, headers text.
---@param method string
---@param url string
---@param opts table|nil { headers = { "Accept: ..." }, body = string, timeout = seconds (10) }
function M.http(method, url, opts)
  opts = opts or {}
  local body_file, head_file = os.tmpname(), os.tmpname()
  local cmd = { "curl", "-s", "-m", tostring(opts.timeout or 10), "-X", method, "-o", body_file, "-D", head_file,
    "-w", "'%{http_code}'" }
  for _, h in ipairs(opts.headers or {}) do
    cmd[#cmd + 1] = "-H " .. shell_quote(h)
  end
  if opts.body then
    cmd[#cmd + 1] = "--data-binary " .. shell_quote(opts.body)
  end
  cmd[#cmd + 1] = shell_quote(url)
  local p = io.popen(table.concat(cmd, " "))
  local status = tonumber(p:read("*a"))
  p:close()
  local body, head = M.read_file(body_file), M.read_file(head_file)
  os.remove(body_file)
  os.remove(head_file)
  return status, body, head
end

--- Starts moonwatch run on an ephemeral port; returns the handle with h.base = "http://127.0.0.1:PORT".
function M.start_run(file, extra, opts)
  local args = { "run", "--server.http.listen-addr=127.0.0.1:0" }
  for _, a in ipairs(extra or {}) do
    args[#args + 1] = a
  end
  args[#args + 1] = file
  local h = M.start(args, opts)
  assert(h.wait_log("pipeline running", 10), "moonwatch did not start:\n" .. h.read())
  h.base = "http://" .. h.read():match('msg="pipeline running".- http=(%S+)')
  return h
end

--- What a shell command prints on stdout (its stderr goes where cmd redirects it).
function M.sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("*a")
  p:close()
  return out
end

--- A table's keys, sorted.
function M.sorted_keys(t)
  local out = {}
  for k in pairs(t) do
    out[#out + 1] = k
  end
  table.sort(out)
  return out
end

--- A free TCP port on 127.0.0.1, never one this process was given before (two servers of
--- one test told the same port would have one answer for both). Taken at random below the
--- kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768 and up here), where
--- no outgoing connection takes its local port, and checked free by binding it once: with
--- specs running four at a time, ports the kernel chose (bind to 0) were taken meanwhile by
--- another spec's connections ("bind: address already in use"). Each spec process draws from
--- its own seed.
local given = {}
local port_rng -- this process's own generator (math.random's sequence stays the specs')
function M.free_port()
  if not port_rng then
    local f = io.open("/proc/self/stat")
    local pid = f and tonumber(f:read("*l"):match("^(%d+)")) or 0
    if f then
      f:close()
    end
    port_rng = (os.time() * 7919 + pid * 104729) % 2147483647
    if port_rng == 0 then
      port_rng = 1
    end
  end
  for _ = 1, 50 do
    port_rng = (port_rng * 48271) % 2147483647 -- Park-Miller
    local port = 20000 + port_rng % 12700
    if not given[port] then
      given[port] = true
      local p = io.popen(string.format("/usr/bin/python3 -c 'import socket; s=socket.socket(); "
        .. "s.bind((\"127.0.0.1\", %d)); print(\"ok\")' 2>/dev/null", port))
      local ok = p:read("*l") == "ok"
      p:close()
      if ok then
        return port
      end
    end
  end
  error("free_port: no free port in 50 tries")
end

--- Starts a server that listens on a port it is told, on a free port, and waits until it
--- answers: cmd and probe are shell commands with %d for the port; probe prints "ok" when
--- the server answers. A server that does not answer in 5 s (its port was taken meanwhile,
--- say) is killed and started again on another port, 3 times. Returns port, pid.
function M.start_server(cmd, probe)
  for _ = 1, 3 do
    local port = M.free_port()
    local p = io.popen(string.format("(%s) >/dev/null 2>&1 </dev/null & echo $!", string.format(cmd, port)))
    local pid = tonumber(p:read("*l"))
    p:close()
    for _ = 1, 50 do
      local q = io.popen(string.format(probe, port))
      local out = q:read("*a")
      q:close()
      if out:find("ok", 1, true) then
        return port, pid
      end
      os.execute("sleep 0.1")
    end
    os.execute("kill " .. pid .. " 2>/dev/null")
  end
  error("server did not start: " .. cmd)
end

local spawned = {}

--- Starts a shell command in the background (its output to log, or nowhere); returns its pid,
--- remembered for M.kill_spawned.
function M.spawn(cmd, log)
  local pidfile = os.tmpname()
  os.execute(string.format("(sh -c 'echo $$ > %s; exec %s' >%s 2>&1 </dev/null &)", pidfile, cmd, log or "/dev/null"))
  for _ = 1, 100 do
    local f = io.open(pidfile)
    local pid = f and tonumber(f:read("*l") or "")
    if f then
      f:close()
    end
    if pid then
      os.remove(pidfile)
      spawned[#spawned + 1] = pid
      return pid
    end
    os.execute("sleep 0.02")
  end
  error("could not start " .. cmd)
end

--- Stops every process M.spawn started (a spec's teardown).
function M.kill_spawned()
  for _, pid in ipairs(spawned) do
    os.execute("kill " .. pid .. " 2>/dev/null")
  end
  spawned = {}
end

-- And whatever a teardown forgets goes when the spec's process ends: busted leaves with
-- os.exit(code, true), which closes the Lua state and so runs this finalizer (a receiver
-- one describe did not stop was left running after every run).
M._reaper = require("ffi").gc(require("ffi").new("char[1]"), function()
  M.kill_spawned()
end)

--- Waits until url answers 200 (true), or raises after timeout seconds (20).
function M.wait_http(url, timeout)
  local deadline = os.time() + (timeout or 20)
  repeat
    if M.http("GET", url) == 200 then
      return true
    end
    os.execute("sleep 0.1")
  until os.time() > deadline
  error("no answer from " .. url)
end

--- Starts Prometheus with its remote-write receiver on 127.0.0.1:port, data and log in dir
--- (flags: more command-line flags); returns its pid once it is ready.
function M.start_prometheus(port, dir, flags)
  os.execute("mkdir -p " .. dir)
  M.write(dir .. "/prometheus.yml", "global:\n  scrape_interval: 1h\n")
  local pid = M.spawn(string.format("prometheus --config.file=%s/prometheus.yml --storage.tsdb.path=%s/data "
    .. "--web.listen-address=127.0.0.1:%d --web.enable-remote-write-receiver %s", dir, dir, port, flags or ""),
    dir .. "/log")
  M.wait_http("http://127.0.0.1:" .. port .. "/-/ready")
  return pid
end

--- True when the moonwatch under test is the ASan/UBSan build (MW_SANITIZE), whose
--- quarantine keeps freed memory resident: RSS checks do not hold there.
function M.sanitized()
  local f = io.open((os.getenv("MOONWATCH_BUILD_DIR") or "build") .. "/CMakeCache.txt")
  local s = f and f:read("*a") or ""
  if f then
    f:close()
  end
  return s:find("MW_SANITIZE:BOOL=ON", 1, true) ~= nil
end

--- A fresh temporary directory.
function M.tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("*l")
  p:close()
  return d
end

return M
