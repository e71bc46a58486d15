-- The remote_write e2e specs' fixtures: a target whose every served sample is logged, the
-- samples Prometheus and VictoriaMetrics stored, pipelines from a target to endpoints, scripted
-- receivers (status plans) and what they logged. Each spec process has its own temporary directory.
local proc = require("helpers.proc")
local cjson = require("cjson")

local tmp = proc.tmpdir()
local SRC = proc.source

local function sh(cmd)
  return proc.sh(cmd .. " 2>/dev/null")
end

local free_port = proc.free_port

local spawn, wait_http, start_prometheus = proc.spawn, proc.wait_http, proc.start_prometheus

local function start_vm(port, dir)
  local pid = spawn(string.format("victoria-metrics -httpListenAddr=127.0.0.1:%d -storageDataPath=%s "
    .. "-retentionPeriod=100y -search.disableCache", port, dir), tmp .. "/vm.log")
  wait_http("http://127.0.0.1:" .. port .. "/health")
  return pid
end

-- Starts a target serving nseries (5) series; returns its port and pid.
local function start_target(log, nseries)
  local port = free_port()
  local pid = spawn(string.format("%s lua %s/tests/e2e/fixtures/target.lua %d %s %d", proc.quote(proc.bin), SRC, port,
    log, nseries or 5))
  wait_http("http://127.0.0.1:" .. port .. "/metrics")
  os.remove(log) -- the readiness probe's sample is not part of the test
  return port, pid
end

-- The samples the target served: { ["series ts"] = value }, count.
local function served(log)
  local out, n = {}, 0
  for line in io.lines(log) do
    local s, v, ts = line:match("^(%d+) (%d+) (%d+)$")
    out[s .. " " .. ts] = tonumber(v)
    n = n + 1
  end
  return out, n
end

-- rw_test samples stored by Prometheus: { ["series ts"] = value }.
local function prometheus_samples(port)
  local _, body = proc.http("GET", "http://127.0.0.1:" .. port .. "/api/v1/query?query=rw_test%5B1h%5D")
  local out = {}
  for _, r in ipairs(cjson.decode(body).data.result) do
    for _, v in ipairs(r.values) do
      out[r.metric.series .. " " .. string.format("%d", math.floor(v[1] * 1000 + 0.5))] = tonumber(v[2])
    end
  end
  return out
end

local function vm_samples(port)
  proc.http("GET", "http://127.0.0.1:" .. port .. "/internal/force_flush")
  local _, body = proc.http("GET", "http://127.0.0.1:" .. port .. "/api/v1/export?match%5B%5D=rw_test")
  local out = {}
  for line in body:gmatch("[^\n]+") do
    local r = cjson.decode(line)
    for i, ts in ipairs(r.timestamps) do
      out[r.metric.series .. " " .. string.format("%d", ts)] = r.values[i]
    end
  end
  return out
end

-- The specs' queue_config (Lua source text by argument).
local QUEUE = { batch_send_deadline = '"200ms"', min_backoff = '"50ms"', max_backoff = '"500ms"' }

-- A pipeline scraping the target into remote_write endpoints; opts.queue: queue_config arguments
-- over QUEUE, opts.endpoint: more endpoint arguments (Lua source text).
local function pipeline(name, target_port, endpoints, extra, opts)
  opts = opts or {}
  local q, qs = {}, {}
  for k, v in pairs(QUEUE) do
    q[k] = v
  end
  for k, v in pairs(opts.queue or {}) do
    q[k] = v
  end
  for k, v in pairs(q) do
    qs[#qs + 1] = k .. " = " .. v
  end
  table.sort(qs)
  local eps = {}
  for _, e in ipairs(endpoints) do
    eps[#eps + 1] = string.format("{ url = %q, %s queue_config = { %s } }", e, opts.endpoint or "",
      table.concat(qs, ", "))
  end
  return proc.write(tmp .. "/" .. name .. ".lua", string.format([[
prometheus.scrape "t" {
  targets = {{ __address__ = "127.0.0.1:%d" }},
  forward_to = { prometheus.remote_write.out.receiver },
  scrape_interval = "500ms",
  scrape_timeout = "500ms",
}
prometheus.remote_write "out" {
  endpoint = { %s },
  %s
}
]], target_port, table.concat(eps, ", "), extra or ""))
end

local metric = proc.metric

-- Waits until every served sample (accepted by pred) is in got(); returns missing count.
local function wait_all(log, got, timeout, pred)
  local deadline = os.time() + (timeout or 15)
  local missing
  repeat
    local want = served(log)
    local have = got()
    missing = 0
    for k, v in pairs(want) do
      if (not pred or pred(k)) and have[k] ~= v then
        missing = missing + 1
      end
    end
    if missing == 0 then
      return 0
    end
    os.execute("sleep 0.3")
  until os.time() > deadline
  return missing
end


local function scripted(plan, name)
  local log, rlog = tmp .. "/served-" .. name, tmp .. "/requests-" .. name
  local tport = start_target(log)
  local rport = free_port()
  spawn(string.format("%s lua %s/tests/e2e/fixtures/receiver.lua %d %s %s", proc.quote(proc.bin), SRC, rport,
    rlog, plan))
  os.execute("sleep 0.3")
  local h = proc.start_run(pipeline(name, tport, { "http://127.0.0.1:" .. rport .. "/api/v1/write" }),
    { "--storage.path=" .. tmp .. "/data-" .. name })
  return h, rlog
end

local function requests(rlog)
  local out = {}
  local f = io.open(rlog)
  if not f then
    return out
  end
  for line in f:lines() do
    local n, status, enc, ctype, version, agent, bytes, t = line:match(
      "^(%d+) (%d+) (%S+) (%S+) (%S+) (%S+) (%d+) (%S+)$")
    out[#out + 1] = { n = tonumber(n), status = tonumber(status), encoding = enc, type = ctype,
      version = version, agent = agent, bytes = tonumber(bytes), time = tonumber(t) }
  end
  f:close()
  return out
end

local function wait_requests(rlog, n)
  for _ = 1, 100 do
    if #requests(rlog) >= n then
      return requests(rlog)
    end
    os.execute("sleep 0.1")
  end
  return requests(rlog)
end

return {
  tmp = tmp,
  SRC = SRC,
  sh = sh,
  free_port = free_port,
  spawn = spawn,
  wait_http = wait_http,
  start_prometheus = start_prometheus,
  start_vm = start_vm,
  start_target = start_target,
  served = served,
  prometheus_samples = prometheus_samples,
  vm_samples = vm_samples,
  QUEUE = QUEUE,
  pipeline = pipeline,
  metric = metric,
  wait_all = wait_all,
  scripted = scripted,
  requests = requests,
  wait_requests = wait_requests,
}
