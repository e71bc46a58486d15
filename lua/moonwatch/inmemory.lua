--- moonwatch.inmemory: exporters' in-memory scrape endpoints.
-- An exporter component registers a collect function under its id; its
-- `targets` export points at the in-memory address with the metrics path
-- /api/v0/component/<id>/metrics. prometheus.scrape calls the function
-- directly for that address (no socket); the HTTP server serves the same
-- path for people and other collectors.
local constants = require("moonwatch.pipeline").constants

local M = {}

--- The __address__ of in-memory targets (Alloy uses alloy.internal:12345).
M.ADDRESS = "moonwatch.internal:12345"

local endpoints = {}

--- The metrics path of a component's in-memory endpoint.
function M.path(component_id)
  return "/api/v0/component/" .. component_id .. "/metrics"
end

--- Registers collect(accept, accept_encoding) -> body, content_type, gzipped for a component.
function M.register(component_id, collect)
  endpoints[component_id] = collect
end

function M.unregister(component_id)
  endpoints[component_id] = nil
end

--- The component id of an in-memory metrics path, or nil.
---@param path string
---@return string|nil
function M.component_id(path)
  return path:match("^/api/v0/component/(.+)/metrics$")
end

--- The collect function for a metrics path or component id, or nil.
function M.lookup(path_or_id)
  local id = path_or_id:match("^/api/v0/component/(.+)/metrics$") or path_or_id
  return endpoints[id]
end

--- The one target an exporter exports, as Alloy's exporters do.
---@param ctx table the component's context
---@param job string e.g. "integrations/self"
function M.target(ctx, job)
  return {
    __address__ = M.ADDRESS,
    __metrics_path__ = M.path(ctx.id),
    __scheme__ = "http",
    job = job,
    instance = constants().hostname,
    __meta_component_name = ctx.name,
    __meta_component_id = ctx.id,
  }
end

return M
