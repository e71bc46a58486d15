--- moonwatch.api: the HTTP surface of a running moonwatch.
--   /-/ready    200 once the first load is done, 503 before
--   /-/healthy  200, or 500 naming the unhealthy components
--   /-/reload   POST or PUT: reloads the pipeline; 400 with the problems (GET: 405)
--   /metrics    the runtime's own metrics (text 0.0.4 or OpenMetrics by Accept)
--   /api/v0/components, /api/v0/components/<id>   JSON debug API
--   /api/v0/component/<id>/metrics                 an exporter component's metrics
--   /           the web UI on top of the debug API
-- Requests naming a foreign Host, and cross-origin POSTs, get 403 (http_server.host_guard).
local http_server = require("moonwatch.http_server")
local metrics = require("moonwatch.metrics")
local selfmetrics = require("moonwatch.selfmetrics")
local inmemory = require("moonwatch.inmemory")
local schema = require("moonwatch.schema")
local errors = require("moonwatch.errors")
local duration = require("moonwatch.duration")

local M = {}

local function iso(t)
  if not t then
    return nil
  end
  local secs = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", secs) .. string.format(".%03dZ", math.floor((t - secs) * 1000))
end

-- Arguments as the user wrote them: durations formatted, secrets redacted.
local function display(spec_args, value)
  if type(value) ~= "table" or getmetatable(value) then
    return schema.redact(value)
  end
  local out = {}
  for k, v in pairs(value) do
    local spec = spec_args and spec_args[k]
    if spec and spec.type == "duration" and type(v) == "number" then
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

local function summary(ctrl, node)
  local deps = {}
  for id in pairs(node.deps) do
    deps[#deps + 1] = id
  end
  table.sort(deps)
  return {
    id = node.id,
    name = node.name,
    label = node.label,
    health = { state = node.health.state, message = node.health.message, updated_time = iso(node.health.updated) },
    dependencies = http_server.array(deps),
    dependents = http_server.array(ctrl:dependents(node.id)),
  }
end

local function detail(ctrl, node)
  local out = summary(ctrl, node)
  out.file = node.decl.file
  out.line = node.decl.line
  out.arguments = display(node.module.args, node.args or {})
  out.exports = schema.redact(node.exports)
  local inst = node.instance
  if inst and type(inst.debug_info) == "function" then
    local ok, info = xpcall(inst.debug_info, debug.traceback, inst)
    out.debug_info = ok and schema.redact(info) or { error = errors.report(info, node.id, nil, node.ctx.log) }
  end
  return out
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
    for _, node in ipairs(rt.controller:list()) do
      out[#out + 1] = summary(rt.controller, node)
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
