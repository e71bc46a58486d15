--- moonwatch.controller: the component graph, evaluation, reload and health.
-- Loading runs the pipeline script, checks every declaration statically
-- (component exists, arguments type-check, references resolve, no cycles) and
-- reports all problems at once. Applying evaluates each component's arguments
-- in dependency order (references resolved on demand, functions re-run when
-- the exports they read change), creates or updates components in place, and
-- stops those that are gone. Exports that change re-evaluate their dependents.
local pipeline = require("moonwatch.pipeline")
local registry = require("moonwatch.registry")
local schema = require("moonwatch.schema")
local scheduler = require("moonwatch.scheduler")
local log = require("moonwatch.log")
local ffi_rt = require("moonwatch.ffi")
local dataflow = require("moonwatch.dataflow")
local livedebug = require("moonwatch.livedebug")

local M = {}
local Controller = {}
Controller.__index = Controller

local HEALTH = { healthy = true, unhealthy = true, unknown = true, exited = true }
M.HEALTH_TYPES = { "healthy", "unhealthy", "unknown", "exited" }

local LOGGING_SCHEMA = {
  args = {
    level = { type = "string", default = "info", enum = { "debug", "info", "warn", "error" },
      doc = "Lowest level of log lines emitted." },
    format = { type = "string", default = "logfmt", enum = { "logfmt", "json" }, doc = "Log line format." },
    write_to = { type = "log_receivers", default = {}, doc = "Log receivers that also get moonwatch's own logs." },
  },
}
local TRACING_SCHEMA = {
  args = {
    sampling_fraction = { type = "number", default = 0.1, doc = "Fraction of traces to keep." },
    write_to = { type = "list", of = { type = "any" }, default = {}, doc = "Trace receivers." },
  },
}

--- A new controller.
---@param settings table { component_path = {dirs}, storage_path = dir, listen_addr = addr }
function M.new(settings)
  return setmetatable({
    settings = settings,
    nodes = {}, -- id -> node
    order = {}, -- ids in start order
    dirty = {}, -- ids waiting for re-evaluation
    generation = 0,
    log = log.new({}),
    stats = { evaluations = 0, evaluation_seconds = 0, load_failures = 0, last_load_ok = nil,
      last_load_time = nil, config_sha256 = nil },
    on_evaluate = nil, -- hook(node, seconds) for metrics
  }, Controller)
end

local function fmt_problem(p)
  return string.format("%s:%d: %s", p.file, p.line or 0, p.msg)
end
M.format_problem = fmt_problem

-- Finds the declared id that prefixes a reference path; returns id and the rest.
local function split_ref(path, declared)
  for i = #path - 1, 1, -1 do
    local id = table.concat(path, ".", 1, i)
    if declared[id] then
      local rest = {}
      for j = i + 1, #path do
        rest[#rest + 1] = path[j]
      end
      return id, rest
    end
  end
  return nil
end

-- Walks an argument value calling fn(ref) for every Reference (also inside concat).
local function each_reference(v, fn, seen)
  if pipeline.is_reference(v) then
    fn(v)
  elseif pipeline.is_lazy(v) then
    for i = 1, v.parts.n do
      each_reference(v.parts[i], fn, seen)
    end
  elseif type(v) == "table" and not getmetatable(v) then
    seen = seen or {}
    if seen[v] then
      return
    end
    seen[v] = true
    for _, x in pairs(v) do
      each_reference(x, fn, seen)
    end
  end
end

-- A value of the given export type, standing in for a reference during static checks.
local PLACEHOLDER_RECEIVER = { append = function() end, id = "(placeholder)" }
local PLACEHOLDER_LOG_RECEIVER = { push = function() end, id = "(placeholder)" }
local function placeholder(t)
  if t == "targets" or t == "list" then
    return {}
  elseif t == "receiver" then
    return PLACEHOLDER_RECEIVER
  elseif t == "log_receiver" then
    return PLACEHOLDER_LOG_RECEIVER
  elseif t == "map" then
    return {}
  elseif t == "string" then
    return ""
  elseif t == "number" or t == "int" then
    return 0
  elseif t == "bool" then
    return false
  end
  return nil -- unknown: skip the check
end

-- Replaces references in v by placeholders of their export types (static check).
local function stand_in(v, export_type_of)
  if pipeline.is_reference(v) then
    return placeholder(export_type_of(v)), true
  elseif pipeline.is_lazy(v) then
    return {}, true
  elseif type(v) == "function" then
    return nil, true
  elseif type(v) == "table" and not getmetatable(v) then
    local out, dynamic = {}, false
    for k, x in pairs(v) do
      local y, d = stand_in(x, export_type_of)
      out[k] = y
      dynamic = dynamic or d
    end
    return out, dynamic
  end
  return v, false
end

--- Loads the pipeline file and checks it; nothing is started or changed.
--- Returns a plan (to pass to apply) or nil and a list of problem strings.
---@param file string
---@return table|nil plan, string[]|nil problems
function Controller:plan(file)
  local result, err = pipeline.load(file, { storage_path = self.settings.storage_path })
  if not result then
    return nil, { err }
  end
  local problems = {}
  for _, p in ipairs(result.problems) do
    problems[#problems + 1] = p
  end
  local declared, modules = {}, {}
  for _, d in ipairs(result.declarations) do
    declared[d.id] = d
  end
  local names
  for _, d in ipairs(result.declarations) do
    local mod, merr = registry.find(d.name, self.settings.component_path)
    if mod then
      modules[d.id] = mod
    else
      local msg = merr
      if not msg then
        names = names or registry.list(self.settings.component_path)
        local hint = schema.did_you_mean(d.name, names)
        msg = string.format("unknown component %q%s (searched %s)", d.name,
          hint and string.format(" (did you mean %q?)", hint) or "",
          table.concat(self.settings.component_path, ", "))
      end
      problems[#problems + 1] = { file = d.file, line = d.line, msg = string.format("%s %q: %s", d.name, d.label, msg) }
    end
  end

  -- References resolve to declared components and declared exports.
  local deps = {}
  for _, d in ipairs(result.declarations) do
    deps[d.id] = {}
    local function check_ref(ref)
      local path = rawget(ref, "_path")
      local id, rest = split_ref(path, declared)
      local where = string.format("%s %q", d.name, d.label)
      if not id then
        problems[#problems + 1] = { file = d.file, line = d.line,
          msg = string.format("%s: reference to undeclared component: %s", where, pipeline.path_of(ref)) }
        return
      end
      deps[d.id][id] = true
      local mod = modules[id]
      if mod and (#rest == 0 or not mod.exports[rest[1]]) then
        local exports = schema.sorted_keys(mod.exports)
        local hint = #rest > 0 and schema.did_you_mean(rest[1], exports)
        problems[#problems + 1] = { file = d.file, line = d.line,
          msg = string.format("%s: %s has no export %s%s (exports: %s)", where, id,
            #rest > 0 and string.format("%q", rest[1]) or "named",
            hint and string.format(" (did you mean %q?)", hint) or "",
            #exports > 0 and table.concat(exports, ", ") or "none") }
      end
    end
    each_reference(d.args, check_ref)
  end

  -- Cycles in the static graph.
  local state, stack = {}, {}
  local function visit(id)
    if state[id] == "done" then
      return
    end
    if state[id] == "active" then
      local cycle, start = {}, nil
      for i, s in ipairs(stack) do
        if s == id then
          start = i
        end
        if start then
          cycle[#cycle + 1] = s
        end
      end
      cycle[#cycle + 1] = id
      local d = declared[id]
      problems[#problems + 1] = { file = d.file, line = d.line,
        msg = (#cycle == 2 and "component references itself: " or "cycle between components: ")
          .. table.concat(cycle, " -> ") }
      return true
    end
    state[id] = "active"
    stack[#stack + 1] = id
    for dep in pairs(deps[id] or {}) do
      if declared[dep] and visit(dep) then
        break
      end
    end
    stack[#stack] = nil
    state[id] = "done"
  end
  for _, d in ipairs(result.declarations) do
    visit(d.id)
  end

  -- Arguments type-check, with references standing in as values of their export types.
  for _, d in ipairs(result.declarations) do
    local mod = modules[d.id]
    if mod then
      local args = stand_in(d.args, function(ref)
        local id, rest = split_ref(rawget(ref, "_path"), declared)
        local tmod = id and modules[id]
        local ex = tmod and #rest == 1 and tmod.exports[rest[1]]
        return ex and ex.type
      end)
      local _, ps = schema.validate({ args = mod.args, exclusive = mod.exclusive, validate = mod.validate }, args)
      for _, p in ipairs(ps) do
        -- a missing value may be a dynamic one (function, reference) stood in by nil
        local top = p.path:match("^([%w_]+)")
        local dynamic = top and d.args[top] ~= nil and (type(d.args[top]) == "function"
          or pipeline.is_reference(d.args[top]) or pipeline.is_lazy(d.args[top]))
        if not (dynamic and (p.msg:find("got nil", 1, true) or p.msg == "missing required argument")) then
          problems[#problems + 1] = { file = d.file, line = d.line,
            msg = string.format("%s %q: %s%s", d.name, d.label, p.path ~= "" and (p.path .. ": ") or "", p.msg) }
        end
      end
    end
  end

  -- Top-level blocks.
  local blocks = {}
  for name, sch in pairs({ logging = LOGGING_SCHEMA, tracing = TRACING_SCHEMA }) do
    local b = result[name]
    local args, ps = schema.validate(sch, b and stand_in(b.args, function()
      return "log_receiver"
    end) or {})
    for _, p in ipairs(ps) do
      problems[#problems + 1] = { file = b.file, line = b.line,
        msg = string.format("%s: %s%s", name, p.path ~= "" and (p.path .. ": ") or "", p.msg) }
    end
    blocks[name] = args
  end

  if #problems > 0 then
    table.sort(problems, function(a, b)
      return (a.line or 0) < (b.line or 0)
    end)
    local out = {}
    for i, p in ipairs(problems) do
      out[i] = fmt_problem(p)
    end
    return nil, out
  end
  return { result = result, modules = modules, declared = declared, blocks = blocks, file = file }
end

-- SHA-256 of the pipeline file, for moonwatch_config_hash{sha256}.
local function content_hash(file)
  local f = io.open(file, "rb")
  if not f then
    return nil
  end
  local data = f:read("*a")
  f:close()
  local out = require("ffi").new("char[65]")
  ffi_rt.C.mw_ffi_sha256_hex(data, #data, out)
  return require("ffi").string(out)
end

-- Component context: the public API a component instance uses.
local Ctx = {}
Ctx.__index = Ctx

--- Sets (merges) the component's exports; dependents are re-evaluated when they change.
function Ctx:export(values)
  local node = self._node
  local changed = false
  for k, v in pairs(values) do
    if not schema.equal(node.exports[k], v) then
      node.exports[k] = v
      changed = true
    end
  end
  if changed and node.started then
    self._ctrl:exports_changed(node)
  end
end

--- Reports health: "healthy", "unhealthy", "unknown" or "exited", with a message.
function Ctx:set_health(state, message)
  assert(HEALTH[state], "unknown health state")
  local h = self._node.health
  if h.state ~= state or h.message ~= (message or "") then
    h.state, h.message, h.updated = state, message or "", ffi_rt.time_now()
  end
end

--- Starts fn in a task attributed to this component (stopped with the component).
function Ctx:spawn(fn, name, ...)
  local node = self._node
  local task = scheduler.spawn(fn, { name = name or node.id, component_id = node.id, on_exit = function(t)
    node.tasks[t] = nil -- a component that starts tasks as it goes (one per target) keeps only the live ones
  end }, ...)
  if not task.done then
    node.tasks[task] = true
  end
  return task
end

--- A timer attributed to this component (closed with the component).
function Ctx:timer(after, every, fn, name)
  local node = self._node
  local t = scheduler.timer(after, every, fn, { name = name or node.id, component_id = node.id })
  node.timers[#node.timers + 1] = t
  return t
end

--- Counts n samples that reached this component from component from_id other than through
--- one of its receivers (a scrape of an exporter's in-memory target): they show on the
--- from_id -> this component edge of the data-flow graph.
function Ctx:count_in(from_id, n)
  dataflow.add(from_id, self.id, n)
end

Ctx.sleep = function(_, secs)
  return scheduler.sleep(secs)
end

function M.new_ctx(ctrl, node)
  local ctx = setmetatable({
    id = node.id, name = node.name, label = node.label,
    log = log.new({ component_id = node.id }),
    storage_path = (ctrl.settings.storage_path or "./data") .. "/" .. node.id,
    settings = ctrl.settings,
    _node = node, _ctrl = ctrl,
  }, Ctx)
  return ctx
end

-- Evaluation ---------------------------------------------------------------

-- Records the data-flow edge of node's reference to an export of target (rest: the path
-- after the component id) and returns the value node is to get: a node that references
-- a receiver sends data to target, and gets a proxy that counts what it sends
-- (moonwatch.dataflow); any other export (targets, ...) is data target gives to node.
local function link(node, target, rest, value)
  local ex = #rest == 1 and target.module.exports[rest[1]]
  local t = ex and ex.type
  if t == "receiver" or t == "log_receiver" then
    node.flow_to[target.id] = t
    if t == "receiver" and type(value) == "table" and type(value.append) == "function" then
      return dataflow.wrap(node.id, target.id, rest[1], value)
    end
    return value
  end
  node.flow_from[target.id] = node.flow_from[target.id] or t or "exports"
  return value
end

-- Resolves references, lazies and functions in v for node; records dependencies.
function Controller:resolve(node, v, plan)
  if pipeline.is_reference(v) then
    local path = rawget(v, "_path")
    local id, rest = split_ref(path, plan.declared)
    if not id then
      error("reference to undeclared component: " .. pipeline.path_of(v), 0)
    end
    local target = self:ensure(id, plan)
    node.deps[id] = true
    local value = target.exports
    for _, k in ipairs(rest) do
      if type(value) ~= "table" then
        error(string.format("%s: cannot index %s", pipeline.path_of(v), type(value)), 0)
      end
      value = value[k]
    end
    return link(node, target, rest, value)
  elseif pipeline.is_lazy(v) then
    local out = {}
    for i = 1, v.parts.n do
      local part = self:resolve(node, v.parts[i], plan)
      if type(part) ~= "table" then
        error(string.format("concat: argument %d is %s, expected a list", i, type(part)), 0)
      end
      for _, x in ipairs(part) do
        out[#out + 1] = x
      end
    end
    return out
  elseif type(v) == "function" then
    -- While the function runs, references it reads resolve to export values.
    local pctx = plan.result.ctx
    local saved = pctx.resolver
    pctx.resolver = function(path)
      local id, rest = split_ref(path, plan.declared)
      if not id or #rest == 0 then
        return false
      end
      local target = self:ensure(id, plan)
      local value = target.exports
      node.deps[id] = true
      for _, k in ipairs(rest) do
        if type(value) ~= "table" then
          return true, nil
        end
        value = value[k]
      end
      return true, link(node, target, rest, value)
    end
    local ok, res = pcall(v)
    pctx.resolver = saved
    if not ok then
      error(tostring(res), 0)
    end
    return self:resolve(node, res, plan)
  elseif type(v) == "table" and not getmetatable(v) then
    local out = {}
    for k, x in pairs(v) do
      out[k] = self:resolve(node, x, plan)
    end
    return out
  end
  return v
end

-- Evaluates node's arguments; returns args or nil, err.
function Controller:evaluate(node, plan)
  local t0 = ffi_rt.monotonic()
  node.deps, node.flow_to, node.flow_from = {}, {}, {}
  local ok, resolved = pcall(self.resolve, self, node, node.decl.args, plan)
  local args, err
  if not ok then
    err = tostring(resolved)
  else
    local problems
    local mod = node.module
    args, problems = schema.validate({ args = mod.args, exclusive = mod.exclusive, validate = mod.validate }, resolved)
    if #problems > 0 then
      local msgs = {}
      for i, p in ipairs(problems) do
        msgs[i] = (p.path ~= "" and (p.path .. ": ") or "") .. p.msg
      end
      args, err = nil, table.concat(msgs, "; ")
    end
  end
  local dt = ffi_rt.monotonic() - t0
  self.stats.evaluations = self.stats.evaluations + 1
  self.stats.evaluation_seconds = self.stats.evaluation_seconds + dt
  if self.on_evaluate then
    self.on_evaluate(node, dt)
  end
  return args, err
end

local function where(node)
  return string.format("%s:%d: %s %q", node.decl.file, node.decl.line, node.name, node.label)
end

-- Builds (or re-evaluates, on reload) the node for id; on demand for references.
function Controller:ensure(id, plan)
  if plan.settled then
    return self.nodes[id] or error("reference to a component that is not running: " .. id, 0)
  end
  local node = plan.nodes[id]
  if node and node.ready then
    return node
  end
  if node and node.building then
    error("cycle through " .. id, 0)
  end
  local decl = plan.declared[id]
  local existing = self.nodes[id]
  if existing and existing.module == plan.modules[id] then
    node = existing
    node.decl = decl
  else
    node = {
      id = id, name = decl.name, label = decl.label, decl = decl, module = plan.modules[id],
      exports = {}, deps = {}, tasks = {}, timers = {},
      health = { state = "unknown", message = "not started", updated = ffi_rt.time_now() },
    }
    node.ctx = M.new_ctx(self, node)
  end
  plan.nodes[id] = node
  node.building = true
  local args, err = self:evaluate(node, plan)
  node.building = false
  if not args then
    if node.instance then
      -- keep the last good arguments
      node.ctx:set_health("unhealthy", "evaluating arguments: " .. err)
      node.ctx.log:error("failed to evaluate arguments; keeping the last good ones", { err = err })
      node.ready = true
      return node
    end
    error(where(node) .. ": " .. err, 0)
  end
  if not node.instance then
    node.ctx:set_health("healthy", "started")
    local ok, inst = xpcall(node.module.new, debug.traceback, node.ctx, args)
    if not ok then
      error(where(node) .. ": " .. tostring(inst), 0)
    end
    node.instance = inst or {}
    node.args = args
    table.insert(plan.started, node)
  elseif not schema.equal(args, node.args) then
    self:update(node, args)
  elseif node.health.message:find("^evaluating arguments") then
    node.ctx:set_health("healthy", "arguments evaluate again")
  end
  node.ready = true
  return node
end

-- Calls the instance's update; a component without update is restarted.
function Controller:update(node, args)
  local inst = node.instance
  if type(inst.update) == "function" then
    local ok, err = xpcall(inst.update, debug.traceback, inst, args)
    if not ok then
      node.ctx:set_health("unhealthy", "update: " .. tostring(err))
      node.ctx.log:error("update failed; keeping the previous arguments", { err = tostring(err) })
      return
    end
    node.args = args
    if node.health.state == "unhealthy" and node.health.message:find("^evaluating arguments") then
      node.ctx:set_health("healthy", "updated")
    end
  else
    self:stop_node(node)
    local ok, new = xpcall(node.module.new, debug.traceback, node.ctx, args)
    if not ok then
      node.ctx:set_health("unhealthy", "restart with new arguments: " .. tostring(new))
      return
    end
    node.instance, node.args = new or {}, args
    node.ctx:set_health("healthy", "restarted with new arguments")
    self:start_run(node)
  end
end

-- Runs the instance's run() in a task; failures restart it with backoff.
function Controller:start_run(node)
  local inst = node.instance
  if type(inst.run) ~= "function" then
    node.started = true
    return
  end
  node.started = true
  node.backoff = node.backoff or 1
  local ctrl = self
  local launch
  local function on_exit(task, ok, err)
    node.tasks[task] = nil
    node.run_task = nil
    if node.stopping or node.instance ~= inst then
      return
    end
    if ok then
      node.ctx:set_health("exited", "run returned")
      return
    end
    if scheduler.now() - (node.run_started or 0) > 60 then
      node.backoff = 1
    end
    local delay = node.backoff
    node.backoff = math.min(node.backoff * 2, 60)
    node.ctx:set_health("unhealthy", string.format("run failed (restarting in %gs): %s", delay,
      tostring(err):match("^[^\n]*")))
    node.restart_timer = scheduler.timer(delay, 0, function()
      node.restart_timer = nil
      if not node.stopping and node.instance == inst and ctrl.nodes[node.id] == node then
        launch()
      end
    end, { component_id = node.id, name = "restart" })
  end
  launch = function()
    node.run_started = scheduler.now()
    local task = scheduler.spawn(function()
      inst:run(node.ctx)
    end, { name = node.id .. " run", component_id = node.id, on_exit = on_exit })
    if not task.done then
      node.tasks[task] = true
      node.run_task = task
    end
  end
  launch()
end

-- Stops a node's instance: stop(), its tasks cancelled, its timers closed.
function Controller.stop_node(_, node)
  node.stopping = true
  local inst = node.instance
  if inst and type(inst.stop) == "function" then
    local ok, err = xpcall(inst.stop, debug.traceback, inst)
    if not ok then
      scheduler.report_error(node.id, "stop", err)
    end
  end
  if node.restart_timer then
    node.restart_timer:close()
    node.restart_timer = nil
  end
  for task in pairs(node.tasks) do
    scheduler.cancel(task)
  end
  node.tasks = {}
  for _, t in ipairs(node.timers) do
    t:close()
  end
  node.timers = {}
  node.instance = nil
  node.started = false
  node.stopping = false
end

--- Applies a plan: stops removed components, updates surviving ones in place,
--- creates and starts new ones. Returns true or nil, err.
function Controller:apply(plan)
  plan.nodes, plan.started = {}, {}
  plan.pipeline_ctx = plan.result.ctx
  -- removed components stop first, in reverse start order
  for i = #self.order, 1, -1 do
    local id = self.order[i]
    if not plan.declared[id] or (self.nodes[id] and self.nodes[id].module ~= plan.modules[id]) then
      local node = self.nodes[id]
      self:stop_node(node)
      node.ctx:set_health("exited", "removed from the pipeline")
      self.nodes[id] = nil
      if not plan.declared[id] then
        dataflow.forget(id)
        livedebug.forget(id)
      end
    end
  end
  local ok, err = pcall(function()
    for _, d in ipairs(plan.result.declarations) do
      self:ensure(d.id, plan)
    end
  end)
  if not ok then
    for _, node in ipairs(plan.started) do
      self:stop_node(node)
    end
    return nil, err
  end
  -- new order: dependencies first
  local order, seen = {}, {}
  local function visit(id)
    if seen[id] then
      return
    end
    seen[id] = true
    for dep in pairs(plan.nodes[id].deps) do
      if plan.nodes[dep] then
        visit(dep)
      end
    end
    order[#order + 1] = id
  end
  for _, d in ipairs(plan.result.declarations) do
    visit(d.id)
  end
  self.nodes, self.order, self.current_plan = plan.nodes, order, plan
  for _, node in pairs(self.nodes) do
    node.ready = nil
  end
  for _, id in ipairs(order) do
    local node = self.nodes[id]
    if not node.started then
      self:start_run(node)
    end
  end
  log.configure({ level = plan.blocks.logging.level, format = plan.blocks.logging.format })
  return true
end

--- Loads (first time) or reloads the pipeline file. On any error the running
--- graph is untouched. Returns true or nil and a list of problems.
function Controller:load(file)
  file = file or self.file
  self.file = file
  local t0 = ffi_rt.monotonic()
  local plan, problems = self:plan(file)
  local ok = false
  if plan then
    local err
    ok, err = self:apply(plan)
    problems = not ok and { err } or nil
  end
  self.stats.last_load_ok = ok and true or false
  self.stats.last_load_time = ffi_rt.time_now()
  self.stats.last_load_seconds = ffi_rt.monotonic() - t0
  if ok then
    self.stats.config_sha256 = content_hash(file)
    self.stats.last_success_time = self.stats.last_load_time
    self.generation = self.generation + 1
    return true
  end
  self.stats.load_failures = self.stats.load_failures + 1
  return nil, problems
end

--- Called when a node's exports change: re-evaluates its dependents (coalesced).
function Controller:exports_changed(node)
  for id, other in pairs(self.nodes) do
    if other.deps[node.id] then
      self.dirty[id] = true
    end
  end
  if next(self.dirty) and not self.dirty_timer then
    self.dirty_timer = scheduler.timer(0, 0, function()
      self.dirty_timer = nil
      self:reevaluate()
    end, { name = "reevaluate" })
  end
end

--- Re-evaluates the dirty components in dependency order.
function Controller:reevaluate()
  local dirty = self.dirty
  self.dirty = {}
  local plan = self.current_plan
  for _, id in ipairs(self.order) do
    local node = self.nodes[id]
    if dirty[id] and node and node.instance then
      plan.settled = true
      local args, err = self:evaluate(node, plan)
      plan.settled = nil
      if not args then
        node.ctx:set_health("unhealthy", "evaluating arguments: " .. err)
        node.ctx.log:error("failed to evaluate arguments; keeping the last good ones", { err = err })
      elseif not schema.equal(args, node.args) then
        self:update(node, args)
      elseif node.health.message:find("^evaluating arguments") then
        node.ctx:set_health("healthy", "arguments evaluate again")
      end
    end
  end
end

--- Stops every component in reverse dependency order.
function Controller:stop()
  for i = #self.order, 1, -1 do
    local node = self.nodes[self.order[i]]
    if node and node.instance then
      self:stop_node(node)
      node.ctx:set_health("exited", "stopped")
    end
  end
end

--- Components as a list (start order) for the debug API and metrics.
function Controller:list()
  local out = {}
  for _, id in ipairs(self.order) do
    out[#out + 1] = self.nodes[id]
  end
  return out
end

--- The data-flow edges between the running components, sorted: { from, to, type }, the
--- data going from `from` to `to` through an export of type `type` ("receiver": `from`
--- references `to`'s receiver; "targets" and others: `to` references `from`'s export).
---@return table[]
function Controller:data_flow()
  local out, seen = {}, {}
  local function add(from, to, t)
    local key = from .. "\0" .. to
    if not seen[key] and self.nodes[from] and self.nodes[to] then
      seen[key] = true
      out[#out + 1] = { from = from, to = to, type = t }
    end
  end
  for _, id in ipairs(self.order) do
    local node = self.nodes[id]
    for to, t in pairs(node.flow_to or {}) do
      add(id, to, t)
    end
    for from, t in pairs(node.flow_from or {}) do
      add(from, id, t)
    end
  end
  table.sort(out, function(a, b)
    return a.from < b.from or (a.from == b.from and a.to < b.to)
  end)
  return out
end

--- Ids of the components that depend on node.
function Controller:dependents(id)
  local out = {}
  for _, oid in ipairs(self.order) do
    if self.nodes[oid].deps[id] then
      out[#out + 1] = oid
    end
  end
  return out
end

return M
