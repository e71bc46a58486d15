--- discovery.kubernetes: targets from the Kubernetes API, as Alloy's discovery.kubernetes
--- (Prometheus's kubernetes SD): roles pod, node, service, endpoints, endpointslice and
--- ingress, with Prometheus's __meta_kubernetes_* labels (roles.lua).
---
--- Each resource the role needs (endpoints also reads services and pods, to add their labels)
--- is listed, then watched from the list's resourceVersion, per namespace (or across all),
--- with the role's label and field selectors: a watch asks for bookmarks
--- (allowWatchBookmarks) so a quiet resource keeps a fresh resourceVersion; a watch that ends
--- is started again from the last resourceVersion seen; 410 Gone (an ERROR event or the
--- status) lists again after the backoff; failures are retried with backoff (0.8 s doubling to
--- 30 s, back to 0.8 s when a watch ends normally) and count
--- prometheus_sd_kubernetes_failures_total. Watches are streamed responses: each event line
--- is applied as it arrives (bounded: 16 MiB a line, 64 MiB a list page).
---
--- The API server: api_server (with the HTTP client arguments), or kubeconfig_file (its
--- current context), or, with neither, the in-cluster service account
--- (KUBERNETES_SERVICE_HOST/PORT, the token file read at each request, the CA file).
local http_client = require("moonwatch.http_client")
local httpconfig = require("moonwatch.httpconfig")
local metrics = require("moonwatch.metrics")
local cjson = require("cjson")
local now = require("moonwatch.scheduler").now
local roles = require("discovery.kubernetes.roles")
local kubeconfig = require("discovery.kubernetes.kubeconfig")

local Instance = {}
Instance.__index = Instance

local ROLES = { "pod", "service", "endpoints", "endpointslice", "node", "ingress" }

-- The API resources: path prefix, name, namespaced, and the selector role that filters them.
local RESOURCES = {
  pods = { prefix = "/api/v1", namespaced = true, role = "pod" },
  nodes = { prefix = "/api/v1", namespaced = false, role = "node" },
  services = { prefix = "/api/v1", namespaced = true, role = "service" },
  endpoints = { prefix = "/api/v1", namespaced = true, role = "endpoints" },
  endpointslices = { prefix = "/apis/discovery.k8s.io/v1", namespaced = true, role = "endpointslice" },
  ingresses = { prefix = "/apis/networking.k8s.io/v1", namespaced = true, role = "ingress" },
}

-- What each role watches: its main resource (one group per object) and the others it reads.
local ROLE = {
  pod = { main = "pods", build = roles.pod },
  node = { main = "nodes", build = roles.node },
  service = { main = "services", build = roles.service },
  endpoints = { main = "endpoints", extra = { "services", "pods" }, build = roles.endpoints },
  endpointslice = { main = "endpointslices", extra = { "services", "pods" }, build = roles.endpointslice },
  ingress = { main = "ingresses", build = roles.ingress },
}

-- Which selector roles a role takes (Prometheus's allowedSelectors).
local ALLOWED_SELECTORS = {
  pod = { "pod", "node" }, service = { "service" }, endpointslice = { "pod", "service", "endpointslice" },
  endpoints = { "pod", "service", "endpoints" }, node = { "node" }, ingress = { "ingress" },
}

local M = {
  name = "discovery.kubernetes",
  doc = "Discovers scrape targets from the Kubernetes API (pods, nodes, services, endpoints, endpointslices, ingresses).",
  args = {
    api_server = { type = "string", doc = "URL of the Kubernetes API server (default: in-cluster or kubeconfig_file)." },
    role = { type = "string", required = true, enum = ROLES, doc = "Type of Kubernetes resource to query." },
    kubeconfig_file = { type = "string", doc = "Path of a kubeconfig file (its current context)." },
    namespaces = { type = "block", optional = true, doc = "Namespaces to discover (default: all).", schema = { args = {
      own_namespace = { type = "bool", default = false, doc = "Include the namespace the collector runs in." },
      names = { type = "list", of = { type = "string" }, default = {}, doc = "Namespaces to discover." },
    } } },
    selectors = { type = "block", repeated = true, default = {}, doc = "Label and field selectors, per role.",
      schema = { args = {
        role = { type = "string", required = true, enum = ROLES, doc = "Role of the selector." },
        label = { type = "string", default = "", doc = "Label selector string." },
        field = { type = "string", default = "", doc = "Field selector string." },
      } } },
    attach_metadata = { type = "block", optional = true,
      doc = "Metadata to attach to targets (not supported yet: must be false).",
      schema = { args = {
        node = { type = "bool", default = false, check = function(v)
          if v then
            return nil, "not supported yet"
          end
        end, doc = "Attach node metadata (not supported yet)." },
      } } },
  },
  exports = {
    targets = { type = "targets", doc = "The discovered targets, with __meta_kubernetes_* labels." },
  },
}
httpconfig.add_args(M.args)
M.exclusive = { httpconfig.AUTH_EXCLUSIVE }

M.MAX_LINE = 16 * 1024 * 1024
M.MAX_PAGE = 64 * 1024 * 1024
M.PAGE_LIMIT = 500
--- A list gives up after this many pages (500,000 objects at PAGE_LIMIT: over three times
--- Kubernetes's largest supported cluster, 150,000 pods), and at a continue token longer than
--- MAX_CONTINUE (the API server's are a few hundred bytes).
M.MAX_LIST_PAGES = 1000
M.MAX_CONTINUE = 64 * 1024
M.BACKOFF_MIN, M.BACKOFF_MAX = 0.8, 30
--- Where the in-cluster service account is mounted; MOONWATCH_KUBERNETES_SERVICEACCOUNT_DIR
--- changes it (for tests, or an unusual mount).
M.SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

local function sa_dir()
  return os.getenv("MOONWATCH_KUBERNETES_SERVICEACCOUNT_DIR") or M.SERVICEACCOUNT_DIR
end

-- Whether the HTTP client arguments differ from their defaults.
local function custom_client(args)
  for k, spec in pairs(httpconfig.ARGS) do
    local v = args[k]
    if v ~= nil and v ~= spec.default and not (type(v) == "table" and next(v) == nil) then
      return true
    end
  end
  return false
end

function M.validate(args)
  local err = http_client.validate(httpconfig.client_config(args))
  if err then
    return err
  end
  local own = args.namespaces and args.namespaces.own_namespace
  if args.api_server and args.kubeconfig_file then
    return "cannot use 'kubeconfig_file' and 'api_server' simultaneously"
  end
  if args.kubeconfig_file and custom_client(args) then
    return "cannot use a custom HTTP client configuration together with 'kubeconfig_file'"
  end
  if not args.api_server and custom_client(args) then
    return "to use custom HTTP client configuration please provide the 'api_server' URL explicitly"
  end
  if args.api_server and own then
    return "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously"
  end
  if args.kubeconfig_file and own then
    return "cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously"
  end
  if args.api_server and not args.api_server:match("^https?://[^/]") then
    return string.format("api_server %q: the URL scheme must be http or https", args.api_server)
  end
  local seen = {}
  for _, s in ipairs(args.selectors or {}) do
    if seen[s.role] then
      return "duplicated selector role: " .. s.role
    end
    seen[s.role] = true
    local ok = false
    for _, r in ipairs(ALLOWED_SELECTORS[args.role] or {}) do
      ok = ok or r == s.role
    end
    if not ok then
      return string.format("%s role supports only %s selectors", args.role,
        table.concat(ALLOWED_SELECTORS[args.role] or {}, ", "))
    end
  end
end

local fam
local function families()
  if not fam then
    local reg = metrics.default
    fam = {
      events = reg:counter("prometheus_sd_kubernetes_events_total", "The number of Kubernetes events handled.",
        { "component_id", "role", "event" }),
      failures = reg:counter("prometheus_sd_kubernetes_failures_total", "The number of failed WATCH/LIST requests.",
        { "component_id" }),
    }
  end
  return fam
end

-- The API server's URL and the HTTP client config: api_server, kubeconfig or in-cluster.
local function connection(args)
  if args.api_server then
    return args.api_server:gsub("/+$", ""), httpconfig.client_config(args)
  end
  if args.kubeconfig_file then
    return kubeconfig.load(args.kubeconfig_file)
  end
  local host, port = os.getenv("KUBERNETES_SERVICE_HOST"), os.getenv("KUBERNETES_SERVICE_PORT")
  if not host or host == "" or not port or port == "" then
    return nil, "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined"
  end
  if host:find(":", 1, true) then
    host = "[" .. host .. "]"
  end
  local dir = sa_dir()
  return "https://" .. host .. ":" .. port, {
    bearer_token_file = dir .. "/token",
    tls_config = { ca_file = dir .. "/ca.crt" },
  }
end

-- The namespaces to watch ({ "" } for all), or nil, err.
local function namespaces(args)
  local ns = args.namespaces or {}
  local names = {}
  for _, n in ipairs(ns.names or {}) do
    names[#names + 1] = n
  end
  if ns.own_namespace then
    -- as Prometheus: an error, never every namespace instead of the collector's own
    local path = sa_dir() .. "/namespace"
    local f, err = io.open(path)
    if not f then
      return nil, "could not determine the pod's namespace: " .. err
    end
    local own = f:read("*l")
    f:close()
    if not own or own == "" then
      return nil, string.format("could not determine the pod's namespace: %s is empty", path)
    end
    names[#names + 1] = own
  end
  if #names == 0 then
    return { "" }
  end
  return names
end

local function query(params)
  local parts = {}
  for _, kv in ipairs(params) do
    if kv[2] ~= nil and kv[2] ~= "" then
      parts[#parts + 1] = kv[1] .. "=" .. http_client.urlencode(kv[2])
    end
  end
  return table.concat(parts, "&")
end

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, m = families(), groups = {}, ntargets = 0 }, Instance)
  self:configure(args)
  ctx:set_health("unknown", "listing")
  return self
end

-- Validated arguments into the connection, the informers' plan; errors raise (file:line).
function Instance:configure(args)
  local url, cfg = connection(args)
  if not url then
    error(cfg, 0)
  end
  local client, err = http_client.new(cfg)
  if not client then
    error(err, 0)
  end
  self.args, self.url, self.client = args, url, client
  local selectors = {}
  for _, s in ipairs(args.selectors or {}) do
    selectors[s.role] = s
  end
  local role = ROLE[args.role]
  local plan = {}
  local nss, nerr = namespaces(args)
  if not nss then
    error(nerr, 0)
  end
  for _, res in ipairs({ role.main, unpack(role.extra or {}) }) do
    local r = RESOURCES[res]
    local sel = selectors[r.role] or {}
    for _, ns in ipairs(r.namespaced and nss or { "" }) do
      plan[#plan + 1] = { resource = res, namespace = ns, label = sel.label or "", field = sel.field or "" }
    end
  end
  self.role, self.plan = role, plan
end

-- (no update: arguments that change make a new instance, whose informers list anew)

function Instance:run()
  local ctx = self.ctx
  self.informers = {}
  for _, p in ipairs(self.plan) do
    local inf = { resource = p.resource, namespace = p.namespace, label = p.label, field = p.field,
      objects = {}, state = "listing", relists = 0, watches = 0 }
    self.informers[#self.informers + 1] = inf
    ctx:spawn(function()
      self:informer(inf)
    end, string.format("%s %s %s", ctx.id, p.resource, p.namespace ~= "" and p.namespace or "(all)"))
  end
  while true do
    ctx:sleep(3600)
  end
end

-- The collection URL of an informer's resource.
function Instance:resource_url(inf)
  local r = RESOURCES[inf.resource]
  local ns = inf.namespace ~= "" and ("/namespaces/" .. inf.namespace) or ""
  return self.url .. r.prefix .. ns .. "/" .. inf.resource
end

local function status_message(resp)
  local ok, st = pcall(cjson.decode, type(resp.body) == "string" and resp.body or "")
  local msg = ok and type(st) == "table" and type(st.message) == "string" and st.message or nil
  return string.format("server returned HTTP status %d%s", resp.status, msg and (": " .. msg) or "")
end

-- Lists every page; replaces the informer's objects. true, or nil, err. client-go's pager
-- follows continue tokens without a bound; a server (or a proxy) that keeps returning one
-- would keep a list going forever, so a list gives up, as a failure (backoff, unhealthy), at
-- a continue token it was given already or after MAX_LIST_PAGES pages.
function Instance:list(inf)
  local objects, rv, cont = {}, nil, nil -- luacheck: ignore 311
  local seen, pages = {}, 0
  repeat
    if cont then
      if #cont > M.MAX_CONTINUE then
        return nil, string.format("list %s: page %d: the continue token is longer than %d bytes: gave up the list",
          inf.resource, pages, M.MAX_CONTINUE)
      end
      if seen[cont] then
        return nil, string.format("list %s: page %d: the API server returned the continue token of page %d again: "
          .. "gave up the list", inf.resource, pages, seen[cont])
      end
      if pages >= M.MAX_LIST_PAGES then
        return nil, string.format("list %s: gave up after %d pages (%d objects a page): the API server still "
          .. "returns a continue token", inf.resource, pages, M.PAGE_LIMIT)
      end
      seen[cont] = pages
    end
    pages = pages + 1
    local url = self:resource_url(inf) .. "?" .. query({ { "labelSelector", inf.label },
      { "fieldSelector", inf.field }, { "limit", tostring(M.PAGE_LIMIT) }, { "continue", cont } })
    local resp, err = self.client:request({ url = url, timeout = 60, max_body = M.MAX_PAGE,
      headers = { Accept = "application/json" } })
    if not resp then
      return nil, "list " .. inf.resource .. ": " .. err
    end
    if resp.status ~= 200 then
      return nil, "list " .. inf.resource .. ": " .. status_message(resp)
    end
    local ok, doc = pcall(cjson.decode, resp.body)
    if not ok or type(doc) ~= "table" or type(doc.metadata) ~= "table" then
      return nil, "list " .. inf.resource .. ": the response is not a Kubernetes List object"
    end
    for _, obj in ipairs(type(doc.items) == "table" and doc.items or {}) do
      if type(obj) == "table" and type(obj.metadata) == "table" then
        objects[roles.key(obj.metadata.namespace, obj.metadata.name)] = obj
      end
    end
    rv = doc.metadata.resourceVersion
    cont = doc.metadata.continue
    if type(cont) ~= "string" then
      cont = nil
    end
  until not cont or cont == ""
  local old = inf.objects
  inf.objects, inf.rv = objects, type(rv) == "string" and rv or nil
  -- a relist after a gap: what vanished or changed counts as events too
  for k, obj in pairs(objects) do
    if old[k] == nil then
      self:event(inf, "add", k)
    elseif not rawequal(old[k], obj) then
      self:event(inf, "update", k)
    end
  end
  for k in pairs(old) do
    if objects[k] == nil then
      self:event(inf, "delete", k)
    end
  end
  return true
end

-- Counts an event and marks what it changes for the next rebuild.
function Instance:event(inf, what, key)
  self.m.events:with(self.ctx.id, RESOURCES[inf.resource].role, what):inc()
  if inf.resource == self.role.main then
    self.dirty = self.dirty or {}
    if self.dirty ~= true then
      self.dirty[inf.resource .. "\0" .. key] = { inf = inf, key = key }
    end
  else
    self.dirty = true -- services and pods change groups of other objects
  end
  self:schedule()
end

-- Applies one watch event line; false stops the watch (410, or a line that is not an event).
function Instance:apply(inf, line)
  if line == "" then
    return true
  end
  local ok, ev = pcall(cjson.decode, line)
  if not ok or type(ev) ~= "table" or type(ev.type) ~= "string" or type(ev.object) ~= "table" then
    inf.watch_err = "watch " .. inf.resource .. ": not a watch event: " .. line:sub(1, 200)
    return false
  end
  local obj, ty = ev.object, ev.type
  if ty == "ERROR" then
    if obj.code == 410 then
      inf.gone = true
    else
      inf.watch_err = string.format("watch %s: %s", inf.resource, tostring(obj.message or obj.reason or "error event"))
    end
    return false
  end
  local meta = type(obj.metadata) == "table" and obj.metadata or {}
  if type(meta.resourceVersion) == "string" then
    inf.rv = meta.resourceVersion
  end
  if ty == "BOOKMARK" then
    inf.bookmarks = (inf.bookmarks or 0) + 1
    return true
  end
  local key = roles.key(meta.namespace, meta.name)
  if ty == "ADDED" or ty == "MODIFIED" then
    local what = inf.objects[key] and "update" or "add"
    inf.objects[key] = obj
    self:event(inf, what, key)
  elseif ty == "DELETED" then
    if inf.objects[key] then
      inf.objects[key] = nil
      self:event(inf, "delete", key)
    end
  else
    inf.watch_err = "watch " .. inf.resource .. ": unknown event type " .. ty
    return false
  end
  return true
end

-- Watches from inf.rv until the stream ends. "gone" (relist), "end" (watch again), or nil, err.
function Instance:watch(inf)
  inf.gone, inf.watch_err = false, nil
  local timeout = 300 + math.random(0, 300) -- as client-go: 5 to 10 minutes, then the server ends it
  local url = self:resource_url(inf) .. "?" .. query({ { "watch", "1" }, { "allowWatchBookmarks", "true" },
    { "resourceVersion", inf.rv }, { "timeoutSeconds", tostring(timeout) },
    { "labelSelector", inf.label }, { "fieldSelector", inf.field } })
  inf.state = "watching"
  inf.watches = inf.watches + 1
  -- a watch that delivers a line, or stays open for a second, is established: a failure
  -- before it is over
  local n = inf.watches
  local function established()
    if inf.err and inf.watches == n and inf.state == "watching" then
      inf.err = nil
      self:health()
    end
  end
  local timer = self.ctx:timer(1, 0, established, self.ctx.id .. " watch")
  local started, lines = now(), 0
  local resp, err = self.client:request({ url = url, timeout = timeout + 60, max_body = 1024 * 1024,
    max_line = M.MAX_LINE, headers = { Accept = "application/json" },
    on_line = function(line)
      lines = lines + 1
      if inf.err then
        self.ctx:timer(0, 0, established, self.ctx.id .. " watch")
      end
      return self:apply(inf, line)
    end })
  timer:close()
  inf.state = "waiting"
  if inf.gone or (resp and resp.status == 410) then
    return "gone"
  end
  if inf.watch_err then
    return nil, inf.watch_err
  end
  if not resp then
    return nil, "watch " .. inf.resource .. ": " .. err
  end
  if resp.status ~= 200 then
    return nil, "watch " .. inf.resource .. ": " .. status_message(resp)
  end
  if lines == 0 and now() - started < 1 then
    -- as client-go's reflector: a server (or a proxy) that ends every watch at once would
    -- otherwise be asked again and again without a pause
    return nil, "watch " .. inf.resource .. ": very short watch: the API server ended it within a second "
      .. "without an event"
  end
  return "end"
end

-- One informer: list, then watch; relist on 410; retry with backoff.
function Instance:informer(inf)
  local ctx = self.ctx
  local backoff = M.BACKOFF_MIN
  local function pause()
    ctx:sleep(backoff * (1 + math.random() * 0.5))
    backoff = math.min(backoff * 2, M.BACKOFF_MAX)
  end
  local function failed(err)
    inf.err = err
    self.m.failures:with(ctx.id):inc()
    ctx.log:warn("Kubernetes API request failed", { err = err })
    self:health()
    pause()
  end
  while true do
    inf.state = "listing"
    local ok, err = self:list(inf)
    if not ok then
      failed(err)
    else
      inf.err, inf.listed = nil, true
      inf.relists = inf.relists + 1
      self:health()
      while true do
        local how, werr = self:watch(inf)
        if how == "gone" then
          inf.gone_count = (inf.gone_count or 0) + 1
          -- relist after the backoff, as client-go's reflector: a server that answers every
          -- watch with 410 must not get a list after list without a pause
          pause()
          break
        elseif how == "end" then
          backoff = M.BACKOFF_MIN
          if inf.err then
            inf.err = nil
            self:health()
          end
        else
          failed(werr)
        end
      end
    end
  end
end

function Instance:health()
  local problems, listing = {}, false
  for _, inf in ipairs(self.informers or {}) do
    if inf.err then
      problems[#problems + 1] = inf.err
    elseif not inf.listed then
      listing = true
    end
  end
  if #problems > 0 then
    self.ctx:set_health("unhealthy", table.concat(problems, "; "))
  elseif listing then
    self.ctx:set_health("unknown", "listing")
  else
    self.ctx:set_health("healthy", "")
  end
end

-- Rebuilds the changed groups soon (a burst of events makes one export).
function Instance:schedule()
  if not self.pending then
    self.pending = self.ctx:timer(0.05, 0, function()
      self.pending = nil
      self:rebuild()
    end, self.ctx.id .. " rebuild")
  end
end

-- The objects of a resource across its informers.
function Instance:store(resource)
  local out = {}
  for _, inf in ipairs(self.informers or {}) do
    if inf.resource == resource then
      for k, v in pairs(inf.objects) do
        out[k] = v
      end
    end
  end
  return out
end

function Instance:rebuild()
  local dirty = self.dirty
  self.dirty = nil
  if not dirty then
    return
  end
  local role = self.role
  local stores = { services = role.extra and self:store("services") or {}, pods = role.extra and self:store("pods") or {} }
  local function build(obj)
    local tg, warn = role.build(obj, stores)
    if warn then
      self.ctx.log:warn(warn, { object = tg.source })
    end
    return tg
  end
  if dirty == true then
    self.groups = {}
    for k, obj in pairs(self:store(role.main)) do
      self.groups[k] = build(obj)
    end
  else
    for _, d in pairs(dirty) do
      local obj = d.inf.objects[d.key]
      self.groups[d.key] = obj and build(obj) or nil
    end
  end
  local keys = {}
  for k in pairs(self.groups) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local groups = {}
  for i, k in ipairs(keys) do
    groups[i] = self.groups[k]
  end
  local targets = roles.flatten(groups)
  self.ntargets = #targets
  self.ctx:export({ targets = targets })
end

function Instance:debug_info()
  local infs = {}
  for _, inf in ipairs(self.informers or {}) do
    local n = 0
    for _ in pairs(inf.objects) do
      n = n + 1
    end
    infs[#infs + 1] = { resource = inf.resource, namespace = inf.namespace, state = inf.state,
      resource_version = inf.rv, objects = n, lists = inf.relists, watches = inf.watches,
      gone = inf.gone_count or 0, bookmarks = inf.bookmarks or 0, last_error = inf.err }
  end
  return { api_server = self.url, role = self.args.role, targets = self.ntargets, informers = infs }
end

return M
