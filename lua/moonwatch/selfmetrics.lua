--- moonwatch.selfmetrics: the runtime's own metrics in the default registry.
-- Names follow Grafana Alloy's with moonwatch_ for alloy_, so its mixin's
-- dashboards and alerts translate one to one; process_* are client_golang's.
local ffi_rt = require("moonwatch.ffi")
local metrics = require("moonwatch.metrics")
local scheduler = require("moonwatch.scheduler")
local core = require("moonwatch.core")
local native_core = require("moonwatch.native.core")
local controller_mod = require("moonwatch.controller")

local M = {}

local LAG_BUCKETS = { 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 }
local EVAL_BUCKETS = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1 }

local installed

--- Registers the runtime metrics once (build info, process, Lua heap, loop lag, callback errors).
---@return table the registry
function M.install()
  local reg = metrics.default
  if installed then
    return reg
  end
  installed = true
  local version, revision = ffi_rt.version()
  reg:gauge("moonwatch_build_info", "A metric with a constant '1' value labeled by version, revision and "
    .. "LuaJIT version from which moonwatch was built.", { "version", "revision", "luajit" })
    :with(version, revision, jit.version):set(1)
  local ok, err = reg:add_process_metrics()
  if not ok then
    error("process metrics: " .. err)
  end

  local heap = reg:gauge("moonwatch_lua_heap_bytes", "Bytes in use by the LuaJIT heap.")
  local symbols = reg:gauge("moonwatch_label_symbols",
    "Distinct label names and values of the process's series, each held once in its symbol table.")
  local symbol_bytes = reg:gauge("moonwatch_label_symbol_bytes",
    "Bytes the label symbol table holds (its strings, entries and index).")
  reg:on_collect(function()
    heap:set(collectgarbage("count") * 1024)
    local n, bytes = native_core.label_symbols()
    symbols:set(n)
    symbol_bytes:set(bytes)
  end)

  local errors = reg:counter("moonwatch_callback_errors_total",
    "Errors caught in component tasks and event-loop callbacks, by component (empty: the runtime).",
    { "component_id" })
  scheduler.on_error_counted = function(id)
    errors:with(id):inc()
  end

  -- Event-loop lag: how late a 1s timer fires.
  local lag = reg:histogram("moonwatch_event_loop_lag_seconds",
    "How late the event loop runs a timer, a measure of how busy the loop is.", nil, LAG_BUCKETS)
  local expected = core.update_now() + 1
  M.lag_timer = core.timer(1, 1, function()
    local now = core.update_now()
    lag:observe(math.max(0, now - expected))
    expected = now + 1
  end, "loop lag")
  return reg
end

--- Registers the controller metrics for ctrl.
function M.attach_controller(ctrl)
  local reg = metrics.default
  local running = reg:gauge("moonwatch_component_controller_running_components",
    "Total number of running components.", { "health_type" })
  local eval = reg:histogram("moonwatch_component_evaluation_seconds",
    "Time spent performing component evaluation.", nil, EVAL_BUCKETS)
  local last_ok = reg:gauge("moonwatch_config_last_load_successful",
    "Config loaded successfully.")
  local failures = reg:counter("moonwatch_config_load_failures_total",
    "Config failed to load.")
  local last_success = reg:gauge("moonwatch_config_last_load_success_timestamp_seconds",
    "Timestamp of the last successful configuration load.")
  local hash = reg:gauge("moonwatch_config_hash", "Hash of the currently active config file.", { "sha256" })
  -- Per component: one series, labelled with its current health type.
  local health = reg:gauge("moonwatch_component_health",
    "Component health: 1 when healthy, 0 otherwise; health_type is the current state.",
    { "component_id", "health_type" })
  local shown = {} -- component id -> health type of its series
  local seen_failures, current_hash = 0, nil
  ctrl.on_evaluate = function(_, seconds)
    eval:observe(seconds)
  end
  reg:on_collect(function()
    local counts = {}
    for _, t in ipairs(controller_mod.HEALTH_TYPES) do
      counts[t] = 0
    end
    local present = {}
    for _, node in ipairs(ctrl:list()) do
      local state = node.health.state
      counts[state] = counts[state] + 1
      present[node.id] = true
      if shown[node.id] ~= state then
        if shown[node.id] then
          health:remove(node.id, shown[node.id])
        end
        shown[node.id] = state
      end
      health:with(node.id, state):set(state == "healthy" and 1 or 0)
    end
    for id, state in pairs(shown) do
      if not present[id] then
        health:remove(id, state)
        shown[id] = nil
      end
    end
    for t, n in pairs(counts) do
      running:with(t):set(n)
    end
    local s = ctrl.stats
    last_ok:set(s.last_load_ok and 1 or 0)
    failures:add(s.load_failures - seen_failures)
    seen_failures = s.load_failures
    if s.last_success_time then
      last_success:set(s.last_success_time)
    end
    if s.config_sha256 ~= current_hash then
      if current_hash then
        hash:remove(current_hash)
      end
      current_hash = s.config_sha256
      hash:with(current_hash):set(1)
    end
  end)
end

--- Registers the HTTP server's metrics (slow clients cut off) for server.
function M.attach_server(server)
  local reg = metrics.default
  local timeouts = reg:counter("moonwatch_http_request_head_timeouts_total",
    "HTTP connections closed because a request's head (or body) did not arrive within "
      .. "--server.http.read-header-timeout.")
  local seen = 0
  reg:on_collect(function()
    local st = server:stats()
    if st then
      timeouts:add(st.head_timeouts - seen)
      seen = st.head_timeouts
    end
  end)
end

--- Counts an HTTP request refused by the host guard (reason "host" or "origin").
local http_refused
function M.http_refused(reason)
  http_refused = http_refused or metrics.default:counter("moonwatch_http_requests_refused_total",
    "HTTP requests refused with 403: a Host not allowed (DNS rebinding) or a cross-origin POST.", { "reason" })
  http_refused:with(reason):inc()
end

--- Counts an HTTP request served by moonwatch's server.
local http_requests
function M.http_request(path, code)
  http_requests = http_requests or metrics.default:counter("moonwatch_http_requests_total",
    "Requests served by moonwatch's HTTP server, by path and status code.", { "path", "code" })
  http_requests:with(path, tostring(code)):inc()
end

return M
