--- moonwatch.http_api: the HTTP surface of a running moonwatch.
--   /-/ready    200 once the first load is done, 503 before
--   /-/healthy  200, or 500 naming the unhealthy components
--   /-/reload   POST or PUT: reloads the pipeline; 400 with the problems (GET: 405)
--   /metrics    the runtime's own metrics (text 0.0.4 or OpenMetrics by Accept)
--   /api/v0/components, /api/v0/components/<id>   JSON debug API
--   /api/v0/graph                                  components, data-flow edges and their rates
--   /api/v0/livedebugging[/<id>]                   live debugging: switch on/off, read samples
--   /api/v0/component/<id>/metrics                 an exporter component's metrics
--   /debug/pprof/...                              profiles of moonwatch itself (moonwatch.pprof)
--   /           the web UI on top of the debug API
-- No secret leaves through here: secret arguments show as "(secret)", header maps show
-- their names only, and every string of arguments, exports, debug info, health messages and
-- a reload's problems passes through moonwatch.redact (a URL's password shows as xxxxx,
-- credentials and configured secrets as xxxxx).
-- Requests naming a foreign Host, and cross-origin POSTs, get 403 (http_server.host_guard).
local http_server = require("moonwatch.http_server")
local metrics = require("moonwatch.metrics")
local selfmetrics = require("moonwatch.selfmetrics")
local inmemory = require("moonwatch.inmemory")
local schema = require("moonwatch.schema")
local errors = require("moonwatch.errors")
local duration = require("moonwatch.duration")
local redact = require("moonwatch.redact")
local dataflow = require("moonwatch.dataflow")
local livedebug = require("moonwatch.livedebug")

local M = {}

local iso = require("moonwatch.duration").iso8601

-- A JSON-ready value with no secret in its strings (URL passwords, credentials, configured
-- secrets: moonwatch.redact).
local redacted = redact.value

-- A sensitive map (headers): its keys, each value "(secret)".
local function names_only(v)
  if type(v) ~= "table" then
    return "(secret)"
  end
  local out = {}
  for k in pairs(v) do
    out[k] = "(secret)"
  end
  return out
end

-- Arguments as the user wrote them: durations formatted, secrets redacted.
local function display(spec_args, value)
  if type(value) ~= "table" or getmetatable(value) then
    return schema.redact(value)
  end
  local out = {}
  for k, v in pairs(value) do
    local spec = spec_args and spec_args[k]
    if spec and spec.sensitive then
      out[k] = names_only(v)
    elseif spec and spec.type == "duration" and type(v) == "number" then
      out[k] = duration.format(v)
    elseif spec and spec.type == "block" and type(v) == "table" then
      if spec.repeated then
        local list = {}
        for i, b in ipairs(v) do
          list[i] = display(spec.schema.args, b)
        end
        out[k] = list
      else
        out[k] = display(spec.schema.args, v)
      end
    else
      out[k] = schema.redact(v)
    end
  end
  return out
end
M.display = display

-- [id] = ids of the components it sends data to, sorted, from the controller's edges.
local function flows_to(ctrl)
  local out = {}
  for _, e in ipairs(ctrl:data_flow()) do
    out[e.from] = out[e.from] or {}
    table.insert(out[e.from], e.to)
  end
  return out
end

local function summary(ctrl, node, to)
  local deps = {}
  for id in pairs(node.deps) do
    deps[#deps + 1] = id
  end
  table.sort(deps)
  return {
    id = node.id,
    name = node.name,
    label = node.label,
    health = { state = node.health.state, message = redact.text(node.health.message),
      updated_time = iso(node.health.updated) },
    dependencies = http_server.array(deps),
    dependents = http_server.array(ctrl:dependents(node.id)),
    data_flow_edges_to = http_server.array((to or flows_to(ctrl))[node.id] or {}),
    live_debugging = livedebug.on[node.id] ~= nil,
  }
end

local function detail(ctrl, node)
  local out = summary(ctrl, node)
  out.file = node.decl.file
  out.line = node.decl.line
  out.arguments = redacted(display(node.module.args, node.args or {}))
  out.exports = redacted(schema.redact(node.exports))
  local inst = node.instance
  if inst and type(inst.debug_info) == "function" then
    local ok, info = xpcall(inst.debug_info, debug.traceback, inst)
    out.debug_info = redacted(ok and schema.redact(info) or { error = errors.report(info, node.id, nil, node.ctx.log) })
  end
  return out
end

-- The rate window of a request (?window=SECONDS, 1 to dataflow.MAX_WINDOW; 60 by default).
local function window_of(req)
  local w = req.query and req.query.window
  if not w then
    return 60
  end
  w = tonumber(w)
  if not w or w ~= math.floor(w) or w < 1 or w > dataflow.MAX_WINDOW then
    return nil, string.format("window: must be a whole number of seconds from 1 to %d", dataflow.MAX_WINDOW)
  end
  return w
end

--- The graph for the UI: every component (as in /api/v0/components) and every data-flow
--- edge with its samples: { window, components, edges = { { from, to, type, samples_total,
--- rate } } } (rate: samples per second over the window; edges that carry no samples,
--- such as a discovery's targets, have samples_total 0).
function M.graph(ctrl, window)
  local to = flows_to(ctrl)
  local comps = {}
  for _, node in ipairs(ctrl:list()) do
    comps[#comps + 1] = summary(ctrl, node, to)
  end
  local counted = {}
  for _, e in ipairs(dataflow.edges(window)) do
    counted[e.from .. "\0" .. e.to] = e
  end
  local edges = {}
  for _, e in ipairs(ctrl:data_flow()) do
    local c = counted[e.from .. "\0" .. e.to]
    counted[e.from .. "\0" .. e.to] = nil
    edges[#edges + 1] = { from = e.from, to = e.to, type = e.type, samples_total = c and c.samples_total or 0,
      rate = c and c.rate or 0 }
  end
  -- samples counted on a pair the references do not link directly (an exporter's targets
  -- relabeled by a discovery.relabel on their way to the scrape)
  for _, c in pairs(counted) do
    if ctrl.nodes[c.from] and ctrl.nodes[c.to] then
      edges[#edges + 1] = { from = c.from, to = c.to, type = "samples", samples_total = c.samples_total, rate = c.rate }
    end
  end
  table.sort(edges, function(a, b)
    return a.from < b.from or (a.from == b.from and a.to < b.to)
  end)
  return { window = window, components = http_server.array(comps), edges = http_server.array(edges) }
end

-- A live-debugging answer for a component (label values may hold a secret: a target's
-- userinfo password in its instance label).
local function live_state(id, since)
  local st = livedebug.get(id, since)
  local entries = {}
  for i, e in ipairs(st.entries) do
    entries[i] = { seq = e.seq, time = iso(e.time), direction = e.direction, peer = e.peer, sample = e.sample,
      labels = e.labels, timestamp = e.timestamp, value = e.value, stale = e.stale or false }
  end
  return { component_id = id, enabled = st.enabled, capacity = st.capacity, samples_seen = st.samples,
    batches_seen = st.batches, seq = st.seq, entries = redacted(http_server.array(entries)) }
end

-- Whether the component sends or gets samples through receivers (what live debugging sees).
local function sees_samples(ctrl, id)
  for _, e in ipairs(ctrl:data_flow()) do
    if e.type == "receiver" and (e.from == id or e.to == id) then
      return true
    end
  end
  return false
end

local function unhealthy(ctrl)
  local bad = {}
  for _, node in ipairs(ctrl:list()) do
    if node.health.state == "unhealthy" then
      bad[#bad + 1] = node.id
    end
  end
  return bad
end

-- An exposition answer for a collect function.
local function exposition(collect, req)
  local body, content_type, gzipped = collect(req.headers["accept"], req.headers["accept-encoding"])
  if not body then
    return 500, "collecting metrics: " .. tostring(content_type) .. "\n"
  end
  local headers = { ["Content-Type"] = content_type }
  if gzipped then
    headers["Content-Encoding"] = "gzip"
  end
  return 200, body, headers
end

--- Adds the routes to server for the runtime rt ({ controller, ready, reload = fn }).
function M.routes(server, rt)
  -- Every route counts its requests in moonwatch_http_requests_total{path,code}.
  local function add(method, pattern, label, fn)
    server:route(method, pattern, function(...)
      local status, body, headers = fn(...)
      selfmetrics.http_request(label, status)
      return status, body, headers
    end)
  end
  add("GET", "/metrics", "/metrics", function(req)
    return exposition(function(...)
      return metrics.default:expose(...)
    end, req)
  end)
  add("GET", "^/api/v0/component/([^/]+)/metrics$", "/api/v0/component/{id}/metrics", function(req, id)
    local collect = inmemory.lookup(id)
    if not collect then
      return 404, "no exporter component " .. id .. "\n"
    end
    return exposition(collect, req)
  end)
  add("GET", "/-/ready", "/-/ready", function()
    if rt.ready then
      return 200, "Moonwatch is ready.\n"
    end
    return 503, "Moonwatch is not ready.\n"
  end)
  add("GET", "/-/healthy", "/-/healthy", function()
    local bad = unhealthy(rt.controller)
    if #bad == 0 then
      return 200, "All components are healthy.\n"
    end
    return 500, "unhealthy components: " .. table.concat(bad, ", ") .. "\n"
  end)
  local function reload()
    local ok, problems = rt.reload()
    if ok then
      return 200, "config reloaded\n"
    end
    return 400, table.concat(problems, "\n") .. "\n"
  end
  -- Not GET: a link or an <img> in any web page must not reload (Prometheus takes POST and PUT).
  add("POST", "/-/reload", "/-/reload", reload)
  add("PUT", "/-/reload", "/-/reload", reload)
  add("GET", "/api/v0/components", "/api/v0/components", function()
    local out = {}
    local to = flows_to(rt.controller)
    for _, node in ipairs(rt.controller:list()) do
      out[#out + 1] = summary(rt.controller, node, to)
    end
    return http_server.json(200, http_server.array(out))
  end)
  add("GET", "^/api/v0/components/([^/]+)$", "/api/v0/components/{id}", function(_, id)
    local node = rt.controller.nodes[id]
    if not node then
      return http_server.json(404, { error = "no component " .. id })
    end
    return http_server.json(200, detail(rt.controller, node))
  end)
  add("GET", "/api/v0/graph", "/api/v0/graph", function(req)
    local window, werr = window_of(req)
    if not window then
      return http_server.json(400, { error = werr })
    end
    return http_server.json(200, M.graph(rt.controller, window))
  end)
  add("GET", "/api/v0/livedebugging", "/api/v0/livedebugging", function()
    local out = {}
    for _, id in ipairs(livedebug.enabled()) do
      local st = livedebug.status(id)
      out[#out + 1] = { component_id = id, enabled = true, capacity = st.capacity, samples_seen = st.samples }
    end
    return http_server.json(200, http_server.array(out))
  end)
  local LIVE = "^/api/v0/livedebugging/([^/?]+)$"
  local LIVE_LABEL = "/api/v0/livedebugging/{id}"
  add("GET", LIVE, LIVE_LABEL, function(req, id)
    if not rt.controller.nodes[id] then
      return http_server.json(404, { error = "no component " .. id })
    end
    local since = req.query and tonumber(req.query.since) or 0
    return http_server.json(200, live_state(id, since))
  end)
  local function live_set(req, id)
    if not rt.controller.nodes[id] then
      return http_server.json(404, { error = "no component " .. id })
    end
    -- a JSON body only: a page of another site cannot send one without the browser asking first (CORS)
    local ctype = (req.headers["content-type"] or ""):lower()
    if not ctype:find("^application/json") then
      return http_server.json(415, { error = "the body must be JSON (Content-Type: application/json)" })
    end
    local body, jerr = http_server.decode_json(req)
    if type(body) ~= "table" then
      return http_server.json(400, { error = jerr or "the body must be a JSON object" })
    end
    for k in pairs(body) do
      if k ~= "enabled" and k ~= "capacity" then
        return http_server.json(400, { error = "unknown field " .. tostring(k) .. " (enabled, capacity)" })
      end
    end
    if body.enabled == true and not sees_samples(rt.controller, id) then
      return http_server.json(400, { error = id .. " sends and receives no samples through receivers: "
        .. "live debugging has nothing to show" })
    end
    local _, err = livedebug.set(id, { enabled = body.enabled, capacity = body.capacity })
    if err then
      return http_server.json(400, { error = err })
    end
    return http_server.json(200, live_state(id, math.huge))
  end
  add("PUT", LIVE, LIVE_LABEL, live_set)
  add("POST", LIVE, LIVE_LABEL, live_set)
  add("DELETE", LIVE, LIVE_LABEL, function(_, id)
    if not rt.controller.nodes[id] then
      return http_server.json(404, { error = "no component " .. id })
    end
    livedebug.set(id, { enabled = false })
    livedebug.clear(id)
    return http_server.json(200, live_state(id, math.huge))
  end)
  require("moonwatch.pprof").routes(add) -- /debug/pprof/ (h20-prof)
  add("GET", "/", "/", function()
    return 200, require("moonwatch.ui").html, { ["Content-Type"] = "text/html; charset=utf-8" }
  end)
end

local function count(flag, value, min)
  local n = tonumber(value)
  if not n or n ~= math.floor(n) or n < min or n > 2 ^ 31 then
    return nil, string.format("--%s: expected an integer >= %d, got %q", flag, min, tostring(value))
  end
  return n
end

--- The server's options from the --server.http.* flags (settings.http, strings as given;
--- missing ones take the defaults); returns options for http_server.listen, or nil, err.
---@param http table|nil
---@return table|nil opts, string|nil err
function M.server_options(http)
  http = http or {}
  local opts = {}
  local timeout, err = duration.parse(http.read_header_timeout or "10s")
  if not timeout or timeout <= 0 then
    return nil, "--server.http.read-header-timeout: " .. (err or "must be positive")
  end
  opts.head_timeout = timeout
  opts.max_connections, err = count("server.http.max-connections", http.max_connections or "4096", 1)
  if not opts.max_connections then
    return nil, err
  end
  opts.max_per_ip, err = count("server.http.max-connections-per-ip", http.max_connections_per_ip or "64", 0)
  if not opts.max_per_ip then
    return nil, err
  end
  opts.allowed_hosts = {}
  for entry in (http.allowed_hosts or ""):gmatch("[^,]+") do
    entry = entry:match("^%s*(.-)%s*$")
    if entry ~= "*" and (not http_server.split_host(entry) or entry:find("[/%s@]")) then
      return nil, string.format("--server.http.allowed-hosts: %q is not a host name or address", entry)
    end
    opts.allowed_hosts[#opts.allowed_hosts + 1] = entry
  end
  return opts
end

--- Starts the HTTP server for rt; returns it or nil, err.
function M.start(rt)
  local opts, err = M.server_options(rt.settings.http)
  if not opts then
    return nil, err
  end
  local server
  server, err = http_server.listen(rt.settings.listen_addr, opts)
  if not server then
    return nil, err
  end
  server:guard(http_server.host_guard({
    listen_addr = rt.settings.listen_addr,
    bound_addr = server:addr(),
    allowed = opts.allowed_hosts,
    hostname = require("moonwatch.pipeline").constants().hostname,
    on_refuse = selfmetrics.http_refused,
  }))
  M.routes(server, rt)
  selfmetrics.attach_server(server)
  return server
end

return M
