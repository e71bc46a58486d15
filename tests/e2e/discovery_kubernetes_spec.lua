-- End-to-end: discovery.kubernetes against a fake Kubernetes API server
-- (tests/e2e/fixtures/fake_kube_api.py) that serves List objects and streams watch events as
-- the API reference documents them, through `moonwatch run` with discovery.relabel reading the
-- targets. The label sets of every role are checked against what Prometheus's kubernetes SD
-- makes of the same objects (fixtures/kubernetes_cases.lua, from Prometheus's own tests); the
-- list+watch protocol (resourceVersion, bookmarks, a dropped watch, 410 Gone as an event and
-- as a status, relist) and the ways to reach the API (api_server, kubeconfig_file, in-cluster)
-- are checked on the requests the server logged.
local proc = require("helpers.proc")
local cjson = require("cjson")
local cases = dofile((os.getenv("MOONWATCH_SOURCE_DIR") or ".") .. "/tests/e2e/fixtures/kubernetes_cases.lua")

local tmp = proc.tmpdir()
local SRC = os.getenv("MOONWATCH_SOURCE_DIR") or "."

local component = proc.component

-- A label set as sorted "name=value" pairs; an empty value is no label (Prometheus drops them
-- when it makes a target, and so does relabeling).
local function canon(t)
  local kv = {}
  for k, v in pairs(t) do
    if v ~= "" then
      kv[#kv + 1] = k .. "=" .. v
    end
  end
  table.sort(kv)
  return table.concat(kv, ",")
end

-- The targets of discovery.relabel.r as sorted canonical strings.
local function targets(h)
  local out = {}
  local got = component(h, "discovery.relabel.r").exports.output
  for _, t in ipairs(type(got) == "table" and got or {}) do
    out[#out + 1] = canon(t)
  end
  table.sort(out)
  return out
end

-- What Prometheus's groups make: the group's labels under each target's.
local function expected(groups)
  local out = {}
  for _, g in ipairs(groups) do
    for _, t in ipairs(g.targets) do
      local m = {}
      for k, v in pairs(g.labels) do
        m[k] = v
      end
      for k, v in pairs(t) do
        m[k] = v
      end
      out[#out + 1] = canon(m)
    end
  end
  table.sort(out)
  return out
end

local function start_api(extra)
  return proc.start_server(string.format("exec python3 %s/tests/e2e/fixtures/fake_kube_api.py %%d %s", SRC, extra or ""),
    (extra or ""):find("--tls", 1, true) and "curl -sk https://127.0.0.1:%d/ping" or "curl -s http://127.0.0.1:%d/ping")
end

local function control(base, what, body)
  local status = proc.http("POST", base .. "/_control/" .. what, { body = cjson.encode(body or {}) })
  assert.equals(200, status)
end

local function api_log(base)
  local _, body = proc.http("GET", base .. "/_control/log", { headers = {} })
  return cjson.decode(body)
end

local function pipeline(name, body)
  return proc.write(tmp .. "/" .. name .. ".lua", body .. [[

discovery.relabel "r" {
  targets = discovery.kubernetes.k.targets,
}
]])
end

local function stop(h)
  h.kill("TERM")
  assert.equals(0, h.wait(10))
end

-- What to stop after each test, whatever happens (busted's finally keeps only one function).
local cleanups = {}
local function cleanup()
  for i = #cleanups, 1, -1 do
    pcall(cleanups[i])
    cleanups[i] = nil
  end
end

-- Starts a pipeline; the process is killed at the end of the test.
local function run(file, opts)
  local h = proc.start_run(file, {}, opts)
  cleanups[#cleanups + 1] = function()
    h.kill("KILL")
  end
  return h
end

describe("discovery.kubernetes", function()
  local port, pid, base
  setup(function()
    port, pid = start_api()
    base = "http://127.0.0.1:" .. port
  end)
  after_each(cleanup)
  teardown(function()
    os.execute("kill " .. pid .. " 2>/dev/null")
  end)

  -- A pipeline of role "ingress" in namespace default against the fake API server.
  local function run_ingress(name)
    return run(pipeline(name, string.format('discovery.kubernetes "k" {\n  api_server = %q,\n  role = "ingress",\n'
      .. '  namespaces = { names = { "default" } },\n}', base)))
  end

  -- The watch (or list) requests of path the API server got after its first `logged` ones.
  local function requests_since(logged, path, watch)
    local n = 0
    for i, r in ipairs(api_log(base)) do
      if i > logged and r.path == path and r.query.watch == (watch and "1" or nil) then
        n = n + 1
      end
    end
    return n
  end

  for _, role in ipairs({ "pod", "node", "service", "endpoints", "endpointslice", "ingress" }) do
    it("role " .. role .. ": the labels Prometheus's kubernetes SD sets for the same objects", function()
      local case = cases[role]
      for path, lst in pairs(case.paths) do
        control(base, "load", { path = path, lists = { lst }, watches = {} })
      end
      local ns = ""
      if case.namespaces then
        ns = string.format("  namespaces = { names = { %q } },\n", case.namespaces[1])
      end
      local h = run(pipeline(role, string.format(
        'discovery.kubernetes "k" {\n  api_server = %q,\n  role = %q,\n%s}', base, role, ns)))
      local want = expected(case.groups)
      local got
      proc.wait_for(function()
        got = targets(h)
        return #got >= #want
      end, 10)
      assert.same(want, got)
      assert.equals("healthy", component(h, "discovery.kubernetes.k").health.state)
      stop(h)
      control(base, "release")
    end)
  end

  it("lists, then watches from the resourceVersion: events, bookmarks, a dropped watch, 410 Gone, relist", function()
    local function pod(name, rv, labels)
      return { metadata = { name = name, namespace = "ns1", uid = name, resourceVersion = rv, labels = labels },
        spec = { containers = { { name = "c", image = "i", ports = { { containerPort = 80, protocol = "TCP" } } } } },
        status = { podIP = "10.0.0." .. name:byte(-1) - 96, phase = "Running" } }
    end
    local function ev(ty, obj)
      return { event = { type = ty, object = obj } }
    end
    control(base, "load", { path = "/api/v1/pods",
      lists = {
        cases.list("PodList", "100", { pod("a", "90") }),
        cases.list("PodList", "200", { pod("c", "190") }),
        cases.list("PodList", "300", { pod("c", "190"), pod("d", "290") }),
      },
      watches = {
        { ev("ADDED", pod("b", "101")), { wait = "s1" }, ev("MODIFIED", pod("a", "110", { tier = "web" })),
          ev("BOOKMARK", { kind = "Pod", apiVersion = "v1", metadata = { resourceVersion = "120" } }),
          { wait = "s2" }, { drop = true } },
        { ev("DELETED", pod("b", "121")), { wait = "s3" },
          ev("ERROR", { kind = "Status", apiVersion = "v1", metadata = {}, status = "Failure",
            message = "too old resource version: 100 (150)", reason = "Expired", code = 410 }) },
        { { status = 410 } },
      } })
    local h = run(pipeline("watch", string.format([[
discovery.kubernetes "k" {
  api_server = %q,
  role = "pod",
  selectors = { { role = "pod", label = "app=x,tier!=db", field = "status.phase=Running" } },
}]], base)))
    local function addresses()
      local out = {}
      for _, t in ipairs(component(h, "discovery.relabel.r").exports.output or {}) do
        local tier = t.__meta_kubernetes_pod_label_tier
        out[#out + 1] = t.__address__ .. (tier and ("/" .. tier) or "")
      end
      table.sort(out)
      return table.concat(out, " ")
    end
    local function wait(want, what)
      local got
      local ok = proc.wait_for(function()
        got = addresses()
        return got == want
      end, 10)
      assert.is_truthy(ok, what .. ": got " .. tostring(got))
    end
    wait("10.0.0.1:80 10.0.0.2:80", "list + ADDED")
    control(base, "signal", { name = "s1" })
    wait("10.0.0.1:80/web 10.0.0.2:80", "MODIFIED")
    control(base, "signal", { name = "s2" }) -- the watch connection drops: watch again from the bookmark
    wait("10.0.0.1:80/web", "DELETED on the second watch")
    control(base, "signal", { name = "s3" }) -- an ERROR event with 410: list again
    wait("10.0.0.3:80 10.0.0.4:80", "relist after 410 (event, then status)")
    proc.wait_for(function()
      return component(h, "discovery.kubernetes.k").health.state == "healthy"
    end, 10, "healthy again")
    -- what the API server was asked
    local reqs = {}
    for _, r in ipairs(api_log(base)) do
      local q = r.query
      if r.path == "/api/v1/pods" and (q.resourceVersion or q.limit) and q.labelSelector == "app=x,tier!=db" then
        reqs[#reqs + 1] = r.query
      end
    end
    local seq = {}
    for _, q in ipairs(reqs) do
      assert.equals("status.phase=Running", q.fieldSelector)
      if q.watch then
        assert.equals("true", q.allowWatchBookmarks)
        assert.is_truthy(tonumber(q.timeoutSeconds))
        seq[#seq + 1] = "watch@" .. q.resourceVersion
      else
        assert.equals("500", q.limit)
        seq[#seq + 1] = "list"
      end
    end
    assert.same({ "list", "watch@100", "watch@120", "list", "watch@200", "list", "watch@300" }, seq)
    assert.equals(1, proc.metric(h, "prometheus_sd_kubernetes_failures_total")) -- the dropped watch
    assert.is_true(proc.metric(h, "prometheus_sd_kubernetes_events_total", 'event="add"') >= 4)
    -- MODIFIED a, and c again in the third list (a relist updates what it finds again, as client-go's)
    assert.equals(2, proc.metric(h, "prometheus_sd_kubernetes_events_total", 'event="update"'))
    assert.equals(2, proc.metric(h, "prometheus_sd_kubernetes_events_total", 'event="delete"'))
    local info = component(h, "discovery.kubernetes.k").debug_info.informers[1]
    assert.equals("300", info.resource_version)
    assert.equals(2, info.gone)
    assert.equals(1, info.bookmarks)
    stop(h)
    control(base, "release")
  end)

  it("keeps its targets while the API server is unreachable, unhealthy, and retries", function()
    control(base, "load", { path = "/api/v1/nodes", lists = { cases.node.paths["/api/v1/nodes"] },
      watches = { { { drop = true } } } })
    local logged = #api_log(base)
    local file = pipeline("unreachable",
      string.format('discovery.kubernetes "k" {\n  api_server = %q,\n  role = "node",\n}', base))
    local h = run(file)
    proc.wait_for(function()
      return #targets(h) == 1
    end, 10, "the node")
    local c = proc.wait_for(function()
      local c = component(h, "discovery.kubernetes.k")
      return c.health.state == "unhealthy" and c
    end, 10, "unhealthy")
    assert.matches("watch nodes: ", c.health.message, 1, true)
    assert.equals(1, #targets(h))
    -- the retried watch holds (the server keeps it open): healthy again, the node still there
    proc.wait_for(function()
      return component(h, "discovery.kubernetes.k").health.state == "healthy"
    end, 10, "healthy again once a watch holds")
    assert.equals(1, #targets(h))
    local watches = 0
    for i, r in ipairs(api_log(base)) do
      if i > logged and r.path == "/api/v1/nodes" and r.query.watch == "1" then
        watches = watches + 1
      end
    end
    assert.is_true(watches >= 2, watches .. " watch requests")
    stop(h)
    control(base, "release")
  end)

  it("backs off when the API server ends each watch at once without an event (no hot loop)", function()
    -- a proxy or a broken API server that answers every watch with an empty 200: client-go
    -- calls a watch that ends within a second without an event a failure ("very short watch")
    local sessions = {}
    for i = 1, 200 do
      sessions[i] = { { ["end"] = true } }
    end
    local path = "/apis/networking.k8s.io/v1/namespaces/default/ingresses"
    control(base, "load", { path = path, lists = { cases.ingress.paths[path] }, watches = sessions })
    local logged = #api_log(base)
    local h = run_ingress("shortwatch")
    proc.wait_for(function()
      return #targets(h) > 0
    end, 10, "the ingress targets")
    local c = proc.wait_for(function()
      local c = component(h, "discovery.kubernetes.k")
      return c.health.state == "unhealthy" and c
    end, 10, "unhealthy")
    assert.matches("very short watch", c.health.message, 1, true)
    os.execute("sleep 3")
    local watches = requests_since(logged, path, true)
    assert.is_true(watches <= 6, watches .. " watch requests in about 3 s")
    assert.is_true(proc.metric(h, "prometheus_sd_kubernetes_failures_total") >= 1)
    assert.is_true(#targets(h) > 0, "the targets stay")
    stop(h)
    control(base, "release")
  end)

  it("backs off when every watch answers 410 Gone (no hot loop of lists)", function()
    -- a proxy or cache that serves a stale resourceVersion: client-go's reflector waits its
    -- backoff before it lists again, whatever ended the watch
    local sessions = {}
    for i = 1, 200 do
      sessions[i] = { { status = 410 } }
    end
    local path = "/apis/networking.k8s.io/v1/namespaces/default/ingresses"
    control(base, "load", { path = path, lists = { cases.ingress.paths[path] }, watches = sessions })
    local logged = #api_log(base)
    local h = run_ingress("gone")
    proc.wait_for(function()
      return #targets(h) > 0
    end, 10, "the ingress targets")
    os.execute("sleep 3")
    local lists = requests_since(logged, path, false)
    assert.is_true(lists <= 6, lists .. " lists in about 3 s")
    assert.is_true(#targets(h) > 0, "the targets stay")
    stop(h)
    control(base, "release")
  end)

  it("gives up a list whose continue token comes back, unhealthy, and backs off (no hot loop)", function()
    -- client-go's pager follows continue tokens without a bound: a server (or a proxy) that
    -- answers every page with the same token would be asked for it again and again
    local path = "/apis/networking.k8s.io/v1/namespaces/default/ingresses"
    local lst = cases.list("IngressList", "10", {})
    lst.metadata.continue = "same-token"
    control(base, "load", { path = path, lists = { lst }, watches = {} })
    local logged = #api_log(base)
    local h = run_ingress("samecontinue")
    local c = proc.wait_for(function()
      local c = component(h, "discovery.kubernetes.k")
      return c.health.state == "unhealthy" and c
    end, 10, "unhealthy")
    assert.matches("list ingresses: page 2: the API server returned the continue token of page 1 again: "
      .. "gave up the list", c.health.message, 1, true)
    os.execute("sleep 3")
    local lists = requests_since(logged, path, false)
    -- two pages a try, tries after 0.8 s, 1.6 s, ... of backoff
    assert.is_true(lists <= 12, lists .. " list requests in about 3 s")
    assert.is_true(proc.metric(h, "prometheus_sd_kubernetes_failures_total") >= 1)
    stop(h)
    control(base, "release")
  end)

  -- 1,000 list requests: ~10 s in the main build, ~50 s under ASan+UBSan, where it tests nothing
  -- more (the HTTP client's C paths are every other test's): run in the main build only.
  local it_unsanitized = proc.sanitized() and pending or it
  it_unsanitized("gives up a list that never ends (a new continue token every page) after 1000 pages", function()
    local path = "/apis/networking.k8s.io/v1/namespaces/default/ingresses"
    control(base, "load", { path = path, lists = { cases.ingress.paths[path] }, watches = {}, endless_continue = true })
    local logged = #api_log(base)
    local h = run_ingress("endless")
    local c = proc.wait_for(function()
      local c = component(h, "discovery.kubernetes.k")
      return c.health.state == "unhealthy" and c
    end, 60, "unhealthy")
    assert.matches("list ingresses: gave up after 1000 pages (500 objects a page): the API server still returns "
      .. "a continue token", c.health.message, 1, true)
    local lists = 0
    for i, r in ipairs(api_log(base)) do
      if i > logged and r.path == path and r.query.watch == nil then
        lists = lists + 1
        if lists > 1 and lists <= 1000 then -- (the first try's pages; a second may have begun)
          assert.equals("page-" .. (lists - 1), r.query.continue)
        end
      end
    end
    assert.is_true(lists >= 1000 and lists <= 2000, lists .. " list requests")
    assert.same({}, targets(h), "an unfinished list makes no targets")
    stop(h)
    control(base, "release")
  end)

  it("rejects configurations Prometheus rejects, naming the line", function()
    local function check(body, msg)
      local file = proc.write(tmp .. "/bad.lua", body)
      local code, _, err = proc.run({ "check", file })
      assert.equals(1, code)
      assert.matches(msg, err, 1, true)
    end
    check('discovery.kubernetes "k" {\n  role = "pod",\n  bearer_token = "x",\n}\n',
      "bad.lua:1: discovery.kubernetes \"k\": to use custom HTTP client configuration please provide "
        .. "the 'api_server' URL explicitly")
    check('discovery.kubernetes "k" {\n  role = "node",\n  api_server = "http://x",\n  selectors = { { role = "pod" } },\n}\n',
      'node role supports only node selectors')
    check('discovery.kubernetes "k" {\n  role = "pod",\n  api_server = "http://x",\n  kubeconfig_file = "/k",\n}\n',
      "cannot use 'kubeconfig_file' and 'api_server' simultaneously")
    check('discovery.kubernetes "k" {\n  role = "pods",\n}\n', 'role')
  end)
end)

describe("discovery.kubernetes reaches the API", function()
  after_each(cleanup)
  it("own_namespace without a readable namespace file is an error, not every namespace", function()
    -- Prometheus: "could not determine the pod's namespace"; watching all namespaces instead
    -- would discover (and scrape) what the configuration excluded
    local dir = tmp .. "/sa-no-ns"
    os.execute("mkdir -p " .. dir)
    proc.write(dir .. "/token", "t0k\n")
    local env = string.format("KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=%d "
      .. "MOONWATCH_KUBERNETES_SERVICEACCOUNT_DIR=%s", proc.free_port(), dir)
    local h = proc.start({ "run", "--server.http.listen-addr=127.0.0.1:0", pipeline("nons",
      'discovery.kubernetes "k" {\n  role = "pod",\n  namespaces = { own_namespace = true },\n}') }, { env = env })
    cleanups[#cleanups + 1] = function()
      h.kill("KILL")
    end
    local code = h.wait(10)
    local msg = h.read()
    assert.are_not.equals(0, code, "running without its namespace: " .. msg)
    assert.matches('nons.lua:1: discovery.kubernetes "k": could not determine the pod\'s namespace', msg, 1, true)
    assert.matches(dir .. "/namespace", msg, 1, true)
  end)

  it("kubeconfig with token and tokenFile: the file wins, read again as it changes; the token while it is unreadable", function()
    -- client-go: clientcmd keeps both (BearerToken, BearerTokenFile); the bearer round tripper
    -- sends the file's (cached) content and falls back to the token when the file cannot be read
    local dir = tmp .. "/both"
    os.execute("mkdir -p " .. dir)
    proc.write(dir .. "/server-token", "from-file\n")
    proc.write(dir .. "/token", "from-file\n")
    local tport, tpid = start_api(string.format("--token %s/server-token", dir))
    local tbase = "http://127.0.0.1:" .. tport
    cleanups[#cleanups + 1] = function()
      os.execute("kill " .. tpid .. " 2>/dev/null")
    end
    control(tbase, "load", { path = "/api/v1/services", lists = { cases.service.paths["/api/v1/services"] },
      watches = {} })
    proc.write(dir .. "/kubeconfig", string.format([[
apiVersion: v1
kind: Config
current-context: test
clusters:
- name: fake
  cluster:
    server: %s
contexts:
- name: test
  context: {cluster: fake, user: me}
users:
- name: me
  user:
    token: inline-token
    tokenFile: token
]], tbase))
    local h = run(pipeline("bothtokens", string.format(
      'discovery.kubernetes "k" {\n  kubeconfig_file = %q,\n  role = "service",\n}', dir .. "/kubeconfig")))
    local ok = proc.wait_for(function()
      return #targets(h) == 4
    end, 10)
    assert.is_truthy(ok, "the services with the file's token: "
      .. tostring(component(h, "discovery.kubernetes.k").health.message))
    local function sent_since(n, auth)
      for i, r in ipairs(api_log(tbase)) do
        if i > n and r.auth == auth then
          return true
        end
      end
    end
    -- one step: the token files as given (nil: the file gone), then the next requests carry want
    -- and the component is healthy again
    local function step(token, server_token, want, what)
      local logged = #api_log(tbase)
      if token then
        proc.write(dir .. "/token", token)
      else
        os.remove(dir .. "/token")
      end
      proc.write(dir .. "/server-token", server_token)
      control(tbase, "release")
      proc.wait_for(function()
        return sent_since(logged, want)
      end, 10, what)
      proc.wait_for(function()
        return component(h, "discovery.kubernetes.k").health.state == "healthy"
      end, 15, "healthy with " .. what)
    end
    step("rotated\n", "rotated\n", "Bearer rotated", "the rotated token from the file")
    step(nil, "inline-token\n", "Bearer inline-token", "the inline token while the file is gone")
    step("back\n", "back\n", "Bearer back", "the file's token once it is back (not the inline one)")
    assert.equals(4, #targets(h))
    stop(h)
  end)

  it("with kubeconfig_file (a token file), and in-cluster (service account token, CA, own namespace)", function()
    local dir = tmp .. "/auth"
    os.execute("mkdir -p " .. dir .. "/sa")
    proc.write(dir .. "/server-token", "t0k\n")
    assert.equals(0, proc.exit_code(os.execute(string.format(
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem -out %s/sa/ca.crt -days 1 -subj /CN=127.0.0.1 "
        .. "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1", dir, dir))))
    local tport, tpid = start_api(string.format("--token %s/server-token --tls %s/sa/ca.crt %s/key.pem", dir, dir, dir))
    local tbase = "https://127.0.0.1:" .. tport
    cleanups[#cleanups + 1] = function()
      os.execute("kill " .. tpid .. " 2>/dev/null")
    end
    -- (curl -k for the control calls)
    local function ctl(what, body)
      os.execute(string.format("curl -sk -X POST --data-binary %q %s/_control/%s >/dev/null", cjson.encode(body or {}),
        tbase, what))
    end
    ctl("load", { path = "/api/v1/services", lists = { cases.service.paths["/api/v1/services"] }, watches = {} })
    ctl("load", { path = "/api/v1/namespaces/default/services", lists = { cases.service.paths["/api/v1/services"] },
      watches = {} })
    -- kubeconfig: server, CA data, token file relative to the kubeconfig's directory
    local f = io.open(dir .. "/sa/ca.crt")
    local ca = f:read("*a")
    f:close()
    local b64 = proc.sh("base64 -w0 " .. dir .. "/sa/ca.crt")
    assert(#ca > 0 and #b64 > 0)
    proc.write(dir .. "/token", "t0k\n")
    proc.write(dir .. "/kubeconfig", string.format([[
apiVersion: v1
kind: Config
current-context: test
clusters:
- name: fake
  cluster:
    server: %s
    certificate-authority-data: %s
contexts:
- name: other
  context: {cluster: nowhere, user: nobody}
- name: test
  context:
    cluster: fake
    user: me
users:
- name: me
  user:
    tokenFile: token
]], tbase, b64))
    local h = run(pipeline("kubeconfig", string.format(
      'discovery.kubernetes "k" {\n  kubeconfig_file = %q,\n  role = "service",\n}', dir .. "/kubeconfig")))
    local ok = proc.wait_for(function()
      return #targets(h) == 4
    end, 10)
    assert.is_truthy(ok, "the services through kubeconfig: " .. h.read())
    stop(h)
    -- in-cluster: KUBERNETES_SERVICE_HOST/PORT, the service account's token, CA and namespace
    proc.write(dir .. "/sa/token", "t0k\n")
    proc.write(dir .. "/sa/namespace", "default\n")
    local env = string.format("KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=%d "
      .. "MOONWATCH_KUBERNETES_SERVICEACCOUNT_DIR=%s/sa", tport, dir)
    h = run(pipeline("incluster",
      'discovery.kubernetes "k" {\n  role = "service",\n  namespaces = { own_namespace = true },\n}'), { env = env })
    proc.wait_for(function()
      return #targets(h) == 4
    end, 10, "the services in-cluster")
    -- a rotated token: the file is read again at each request (the relist after a 401 works)
    proc.write(dir .. "/server-token", "rotated\n")
    ctl("release")
    proc.wait_for(function()
      return component(h, "discovery.kubernetes.k").health.message:find("401", 1, true)
    end, 10, "401 with the old token")
    proc.write(dir .. "/sa/token", "rotated\n")
    proc.wait_for(function()
      return component(h, "discovery.kubernetes.k").health.state == "healthy"
    end, 15, "healthy with the rotated token")
    assert.equals(4, #targets(h))
    stop(h)
    -- every request carried the token
    for _, r in ipairs(cjson.decode(proc.sh("curl -sk " .. tbase .. "/_control/log"))) do
      assert.is_truthy(r.auth == "Bearer t0k" or r.auth == "Bearer rotated", "a request without the token: " .. r.path)
    end
    ctl("release")
  end)
end)
