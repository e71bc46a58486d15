--- moonwatch.metrics: the self-metrics registry (runtime/exposition/registry.c) from Lua.
-- Families are registered once; a child (one label-value tuple) is looked up
-- once and then updated by handle through the FFI: no allocation, no per-update
-- Lua table work beyond the call.
--
--   local metrics = require("moonwatch.metrics")
--   local reqs = metrics.counter("moonwatch_http_requests_total", "HTTP requests.", { "path", "code" })
--   reqs:with("/metrics", "200"):inc()
local ffi = require("ffi")
local C = require("moonwatch.ffi").C

local M = {}

local errbuf = ffi.new("char[512]")
local outp = ffi.new("char *[1]")
local outlen = ffi.new("size_t[1]")
local SEP = "\31"

local Registry = {}
Registry.__index = Registry
local Family = {}
Family.__index = Family
local Child = {}
Child.__index = Child

--- A new registry (M.default is the process-wide one).
function M.new_registry()
  local reg = C.mw_ffi_metrics_create()
  assert(reg ~= nil, "out of memory")
  return setmetatable({ reg = ffi.gc(reg, C.mw_ffi_metrics_free), families = {}, refreshers = {} }, Registry)
end

local function err()
  return ffi.string(errbuf)
end

-- Registers (or finds) a family; raises on a conflicting definition.
function Registry:family(kind, name, help, labels, buckets)
  labels = labels or {}
  local key = name
  local fam = self.families[key]
  if fam then
    return fam
  end
  local names = table.concat(labels, SEP)
  local b, nb = nil, 0
  if buckets then
    nb = #buckets
    b = ffi.new("double[?]", nb, buckets)
  end
  local h = C.mw_ffi_metrics_family_add(self.reg, name, help, kind, names, #names, b, nb, errbuf, 512)
  if h < 0 then
    error("metrics: " .. name .. ": " .. err(), 2)
  end
  fam = setmetatable({ registry = self, handle = h, name = name, labels = labels, children = {} }, Family)
  self.families[key] = fam
  return fam
end

function Registry:counter(name, help, labels)
  return self:family("counter", name, help, labels)
end

function Registry:gauge(name, help, labels)
  return self:family("gauge", name, help, labels)
end

function Registry:histogram(name, help, labels, buckets)
  return self:family("histogram", name, help, labels, buckets)
end

--- Adds fn(), run before each exposition to refresh values computed in Lua;
--- returns a function that removes it.
function Registry:on_collect(fn)
  table.insert(self.refreshers, fn)
  return function()
    for i, f in ipairs(self.refreshers) do
      if f == fn then
        table.remove(self.refreshers, i)
        return
      end
    end
  end
end

--- Deletes the family registered as name and its children (nothing when there is none): a
--- family whose label names must change is removed, then registered again.
function Registry:remove_family(name)
  local fam = self.families[name]
  if fam then
    C.mw_ffi_metrics_family_del(self.reg, fam.handle)
    self.families[name] = nil
  end
end

--- Deletes every child labelled component_id=id (a component removed on reload).
function Registry:remove_component(id)
  C.mw_ffi_metrics_component_del(self.reg, id, #id)
  for _, fam in pairs(self.families) do
    for key, child in pairs(fam.children) do
      if child.component_id == id then
        fam.children[key] = nil
      end
    end
  end
end

--- Registers the process_* families (client_golang's process collector), refreshed
--- from procfs_root (nil: "/proc") for pid (nil or 0: this process) at each exposition.
--- Once per registry. true, or nil, err.
function Registry:add_process_metrics(procfs_root, pid)
  if C.mw_ffi_metrics_process_add(self.reg, procfs_root, pid or 0, errbuf, 512) ~= 0 then
    return nil, err()
  end
  return true
end

local content_types = {} -- format -> its Content-Type

--- Runs a C exposition writer for one request's Accept and Accept-Encoding headers:
--- write(obj, format, gzip, out, len, err, errlen) (mw_ffi_metrics_expose, mw_ffi_node_collect,
--- mw_ffi_procgroup_collect) -> body, content type, gzipped; or nil, err.
function M.expose_c(write, obj, accept, accept_encoding)
  local format = C.mw_ffi_metrics_negotiate(accept)
  local gzip = C.mw_ffi_metrics_wants_gzip(accept_encoding)
  if write(obj, format, gzip, outp, outlen, errbuf, 512) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  -- the one copy: the Lua string the HTTP answer needs
  local body = ffi.string(outp[0], outlen[0])
  C.mw_ffi_metrics_buf_free(outp[0])
  local content_type = content_types[format]
  if not content_type then
    content_type = ffi.string(C.mw_ffi_metrics_content_type(format))
    content_types[format] = content_type
  end
  return body, content_type, gzip == 1
end

--- The exposition of the registry: body, content type, and whether it is gzipped.
---@param accept string|nil the Accept header
---@param accept_encoding string|nil the Accept-Encoding header
function Registry:expose(accept, accept_encoding)
  for _, fn in ipairs(self.refreshers) do
    fn()
  end
  return M.expose_c(C.mw_ffi_metrics_expose, self.reg, accept, accept_encoding)
end

--- The child for these label values (strings, in the family's label order).
function Family:with(...)
  local key = select("#", ...) == 1 and tostring((...)) or table.concat({ ... }, SEP)
  local child = self.children[key]
  if child then
    return child
  end
  local h = C.mw_ffi_metrics_child_get(self.registry.reg, self.handle, key, #key, errbuf, 512)
  if h < 0 then
    error("metrics: " .. self.name .. ": " .. err(), 2)
  end
  child = setmetatable({ reg = self.registry.reg, handle = h }, Child)
  for i, l in ipairs(self.labels) do
    if l == "component_id" then
      child.component_id = select(i, ...)
    end
  end
  self.children[key] = child
  return child
end

--- Deletes the child for these label values.
function Family:remove(...)
  local key = select("#", ...) == 1 and tostring((...)) or table.concat({ ... }, SEP)
  local child = self.children[key]
  if child then
    C.mw_ffi_metrics_child_del(child.reg, child.handle)
    self.children[key] = nil
  end
end

-- A family without labels updates its single child directly.
for _, op in ipairs({ "inc", "add", "set", "observe", "get" }) do
  Family[op] = function(self, v)
    return self:with()[op](self:with(), v)
  end
end

function Child:inc()
  C.mw_ffi_metrics_inc(self.reg, self.handle)
end

function Child:add(v)
  C.mw_ffi_metrics_add(self.reg, self.handle, v)
end

function Child:set(v)
  C.mw_ffi_metrics_set(self.reg, self.handle, v)
end

function Child:observe(v)
  C.mw_ffi_metrics_observe(self.reg, self.handle, v)
end

local getbuf = ffi.new("double[1]")
function Child:get()
  C.mw_ffi_metrics_get(self.reg, self.handle, getbuf)
  return getbuf[0]
end

--- The process-wide registry served at /metrics and by prometheus.exporter.self.
M.default = M.new_registry()

return M
