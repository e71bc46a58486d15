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
local errors = require("moonwatch.errors")
local blocks = require("moonwatch.blocks")
local ffi_rt = require("moonwatch.ffi")
local dataflow = require("moonwatch.dataflow")
local metrics = require("moonwatch.metrics")
local redact = require("moonwatch.redact")
local livedebug = require("moonwatch.livedebug")
local budget = require("moonwatch.budget")
local receiver = require("moonwatch.receiver")
local component = require("moonwatch.component")
local tracing = require("moonwatch.tracing")

local M = {}
local Controller = {}
Controller.__index = Controller

M.HEALTH_TYPES = component.HEALTH_TYPES

-- The spec of a component's (or top-level block's) whole argument table.
local function args_spec(mod)
  mod.spec = mod.spec or { type = "block", schema = { args = mod.args, exclusive = mod.exclusive,
    require_one = mod.require_one, validate = mod.validate, positional = mod.positional } }
  return mod.spec
end

-- The spec of v[k] when v sits at a position of spec (nil: not known).
local function child_spec(spec, v, k)
  if type(spec) ~= "table" then
    return nil
  end
  if spec.type == "block" then
    if spec.repeated and type(k) == "number" and schema.is_array(v) then
      return { type = "block", schema = spec.schema, allow_function = spec.allow_function }
    end
    return spec.schema and spec.schema.args and spec.schema.args[k]
  elseif spec.type == "list" or spec.type == "map" then
    return spec.of
  end
  return nil
end

-- True when a function at a position of spec is the value itself (a Lua relabel
-- rule, an argument of type function), not a dynamic argument to call.
local function function_is_value(spec)
  return type(spec) == "table" and (spec.type == "function" or (spec.type == "block" and spec.allow_function))
end

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
  if p.col then -- an Alloy file's
    return string.format("%s:%d:%d: %s", p.file, p.line or 0, p.col, p.msg)
  end
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

-- A value of the given export type, standing in for a reference during static
-- checks: receivers of their kind, lists; anything else is known only when running.
local PLACEHOLDER_RECEIVERS = {} -- kind -> a receiver of that kind
for kind in pairs(receiver.KINDS) do
  PLACEHOLDER_RECEIVERS[kind] = receiver.new(kind, "(placeholder)", function() end)
end
local function placeholder(t)
  if t == "targets" or t == "list" or t == "map" then
    return {}
  elseif receiver.EXPORT_KIND[t] then
    return PLACEHOLDER_RECEIVERS[receiver.EXPORT_KIND[t]]
  end
  return schema.UNKNOWN
end

-- Replaces references, concat() and function arguments in v (at a position of
-- spec) by stand-ins for the static check: placeholders of the export types,
-- schema.UNKNOWN for what only running tells.
local function stand_in(v, spec, export_type_of)
  if pipeline.is_reference(v) then
    return placeholder(export_type_of(v))
  elseif pipeline.is_lazy(v) then
    return {} -- concat() always gives a list
  elseif type(v) == "function" then
    if function_is_value(spec) then
      return v
    end
    return schema.UNKNOWN
  elseif type(v) == "table" and not getmetatable(v) then
    local out = {}
    for k, x in pairs(v) do
      out[k] = stand_in(x, child_spec(spec, v, k), export_type_of)
    end
    return out
  end
  return v
end

-- Problems of a schema validation as the loader reports them (an internal one is
-- logged with its traceback at debug level).
local function add_problems(problems, ps, file, line, what, col, positions)
  for _, p in ipairs(ps) do
    -- an Alloy file's: the attribute or block at fault, or the nearest enclosing one
    local pos
    if positions and not p.line then
      local key = p.path
      while key and key ~= "" and not positions[key] do
        key = key:match("^(.*)[.%[][^.%[]*$")
      end
      pos = key and positions[key]
    end
    local path = p.path ~= "" and (p.path .. ": ") or ""
    local msg
    if p.internal then
      log.debug("internal error", { where = what, traceback = p.traceback })
      msg = string.format("internal error in %s: %s%s", what, path, p.msg)
    else
      msg = string.format("%s: %s%s", what, path, p.msg)
    end
    problems[#problems + 1] = { file = file, line = p.line or (pos and pos[1]) or line, msg = msg, -- p.line: a stage's own
      col = p.line and p.col or (not p.line and ((pos and pos[2]) or col)) or nil }
  end
end

--- Loads the pipeline file and checks it; nothing is started or changed.
--- Every argument is validated by its schema here (types, ranges, regexes,
--- receiver kinds, the component's own checks); values known only when running
--- (function arguments, exports of no fixed type) are checked when applied.
--- Returns a plan (to pass to apply) or nil and a list of problem strings.
---@param file string
---@return table|nil plan, string[]|nil problems
function Controller:plan(file)
  local plan, problems = self:plan_checked(file)
  return plan, redact.value(problems) -- a problem may quote a value: no secret in it
end

function Controller:plan_checked(file)
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
          registry.describe_path(self.settings.component_path))
      end
      problems[#problems + 1] = { file = d.file, line = d.line, col = d.col,
        msg = string.format("%s %q: %s", d.name, d.label, msg) }
    end
  end

  -- References resolve to declared components and declared exports.
  local deps = {}
  local function check_refs(args, file_, line0, where, dep_set, col0)
    each_reference(args, function(ref)
      local line, col = rawget(ref, "_line") or line0, rawget(ref, "_col") or col0 -- an Alloy file's: the reference's
      local path = rawget(ref, "_path")
      local id, rest = split_ref(path, declared)
      if not id then
        problems[#problems + 1] = { file = file_, line = line, col = col,
          msg = string.format("%s: reference to undeclared component: %s", where, pipeline.path_of(ref)) }
        return
      end
      dep_set[id] = true
      local mod = modules[id]
      if mod and (#rest == 0 or not mod.exports[rest[1]]) then
        local exports = schema.sorted_keys(mod.exports)
        local hint = #rest > 0 and schema.did_you_mean(rest[1], exports)
        problems[#problems + 1] = { file = file_, line = line, col = col,
          msg = string.format("%s: %s has no export %s%s (exports: %s)", where, id,
            #rest > 0 and string.format("%q", rest[1]) or "named",
            hint and string.format(" (did you mean %q?)", hint) or "",
            #exports > 0 and table.concat(exports, ", ") or "none") }
      end
    end)
  end
  for _, d in ipairs(result.declarations) do
    deps[d.id] = {}
    check_refs(d.args, d.file, d.line, string.format("%s %q", d.name, d.label), deps[d.id], d.col)
    -- an Alloy file's expressions: the references they read (functions of them included)
    check_refs(d.refs or {}, d.file, d.line, string.format("%s %q", d.name, d.label), deps[d.id], d.col)
  end
  for _, name in ipairs(blocks.NAMES) do
    local b = result[name]
    if b then
      check_refs(b.args, b.file, b.line, name, {}, b.col)
      check_refs(b.refs or {}, b.file, b.line, name, {}, b.col)
    end
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
      problems[#problems + 1] = { file = d.file, line = d.line, col = d.col,
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

  -- Arguments are validated by their schemas, references standing in as values of their export types.
  local function export_type_of(ref)
    local id, rest = split_ref(rawget(ref, "_path"), declared)
    local tmod = id and modules[id]
    local ex = tmod and #rest == 1 and tmod.exports[rest[1]]
    return ex and ex.type
  end
  for _, d in ipairs(result.declarations) do
    local mod = modules[d.id]
    if mod then
      local spec = args_spec(mod)
      local _, ps = schema.validate(spec.schema, stand_in(d.args, spec, export_type_of))
      add_problems(problems, ps, d.file, d.line, string.format("%s %q", d.name, d.label), d.col, d.positions)
    end
  end

  -- Top-level blocks, by the same schemas.
  local block_args = {}
  for _, name in ipairs(blocks.NAMES) do
    local b = result[name]
    local spec = args_spec(blocks[name])
    local args, ps = schema.validate(spec.schema, b and stand_in(b.args, spec, export_type_of) or {})
    add_problems(problems, ps, b and b.file or file, b and b.line or 0, name, b and b.col, b and b.positions)
    block_args[name] = args
  end

  if #problems > 0 then
    table.sort(problems, function(a, b)
      if (a.line or 0) ~= (b.line or 0) then
        return (a.line or 0) < (b.line or 0)
      end
      return (a.col or 0) < (b.col or 0)
    end)
    local out = {}
    for i, p in ipairs(problems) do
      out[i] = fmt_problem(p)
    end
    return nil, out
  end
  return { result = result, modules = modules, declared = declared, blocks = block_args, file = file }
end

-- SHA-256 of the pipeline file, for moonwatch_config_hash{sha256}.
local function content_hash(file)
  local f = io.open(file, "rb")
  if not f then
    return nil
  end
  local data = f:read("*a")
  f:close()
  return require("moonwatch.native.core").sha256_hex(data)
end

-- Evaluation ---------------------------------------------------------------

-- Raised when a reference reads a component whose evaluation failed (that one
-- failure is what is reported).
local DEP_FAILED = setmetatable({}, { __tostring = function()
  return "a component it reads failed"
end })

-- Records the data-flow edge of a reference to an export of target (rest: the path
-- after the component id) in st (evaluating component st.id) and returns the value the
-- component is to get: one that references a receiver sends data to target, and gets a
-- proxy that counts what it sends (moonwatch.dataflow); any other export (targets, ...)
-- is data target gives to it. The top-level blocks (no st.id) get values as they are.
local function link(st, target, rest, value)
  if not st.id then
    return value
  end
  local ex = #rest == 1 and target.module.exports and target.module.exports[rest[1]]
  local t = ex and ex.type
  if receiver.EXPORT_KIND[t] then
    st.flow_to[target.id] = t
    if receiver.kind_of(value) == "metrics" then
      return dataflow.wrap(st.id, target.id, rest[1], value)
    end
    return value
  end
  st.flow_from[target.id] = st.flow_from[target.id] or t or "exports"
  return value
end

-- Resolves references, concat() and function arguments in v (at a position of
-- spec) against the current exports; st = { plan, deps, id, flow_to, flow_from }
-- records the components read and the data-flow edges of the component id.
function Controller:resolve(st, v, spec)
  local plan = st.plan
  if pipeline.is_reference(v) then
    local path = rawget(v, "_path")
    local id, rest = split_ref(path, plan.declared)
    if not id then
      error("reference to undeclared component: " .. pipeline.path_of(v), 0)
    end
    local target = self:ensure(id, plan)
    st.deps[id] = true
    local value = target.exports
    for _, k in ipairs(rest) do
      if type(value) ~= "table" then
        error(string.format("%s: cannot index %s", pipeline.path_of(v), type(value)), 0)
      end
      value = value[k]
    end
    return link(st, target, rest, value)
  elseif pipeline.is_lazy(v) then
    local out = {}
    for i = 1, v.parts.n do
      local part = self:resolve(st, v.parts[i], spec)
      if type(part) ~= "table" then
        error(string.format("concat: argument %d is %s, expected a list", i, type(part)), 0)
      end
      for _, x in ipairs(part) do
        out[#out + 1] = x
      end
    end
    return out
  elseif type(v) == "function" then
    if function_is_value(spec) then
      return v
    end
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
      st.deps[id] = true
      for _, k in ipairs(rest) do
        if type(value) ~= "table" then
          return true, nil
        end
        value = value[k]
      end
      return true, link(st, target, rest, value)
    end
    local ok, res = budget.xpcall(v, function(e)
      if e == DEP_FAILED then
        return e
      end
      return errors.from_user(e) -- error({}) and the like: described, with the user's file:line
    end)
    pctx.resolver = saved
    if not ok then
      error(res, 0)
    end
    return self:resolve(st, res, spec)
  elseif type(v) == "table" and not getmetatable(v) then
    local out = {}
    for k, x in pairs(v) do
      out[k] = self:resolve(st, x, child_spec(spec, v, k))
    end
    return out
  end
  return v
end

-- Evaluates the arguments of decl (default: node's) for node: resolved and
-- validated completely by the module's schema. Returns args or nil, err, the ids
-- of the components read and its data-flow edges { to = {[id] = type}, from = {...} }.
function Controller:evaluate(node, plan, decl)
  decl = decl or node.decl
  local t0 = ffi_rt.monotonic()
  local evals = self.trace_evals -- a load or re-evaluation being traced: its EvaluateNode spans
  local t0_ns = evals and ffi_rt.C.mw_ffi_trace_now_ns()
  local st = { plan = plan, deps = {}, id = node.id, flow_to = {}, flow_from = {} }
  local spec = args_spec(node.module)
  local ok, resolved = xpcall(self.resolve, debug.traceback, self, st, decl.args, spec)
  local args, err
  if not ok and resolved == DEP_FAILED then
    err = DEP_FAILED
  elseif not ok then
    err = errors.report(resolved, node.id, nil, node.ctx.log)
  else
    local problems
    args, problems = schema.validate(spec.schema, resolved)
    if #problems > 0 then
      local msgs = {}
      for i, p in ipairs(problems) do
        local path = p.path ~= "" and (p.path .. ": ") or ""
        if p.internal then
          node.ctx.log:debug("internal error", { traceback = p.traceback })
          msgs[i] = string.format("internal error in %s: %s%s", node.id, path, p.msg)
        else
          msgs[i] = path .. p.msg
        end
      end
      args, err = nil, table.concat(msgs, "; ")
    end
  end
  local dt = ffi_rt.monotonic() - t0
  if evals then
    evals[#evals + 1] = { node.id, t0_ns, ffi_rt.C.mw_ffi_trace_now_ns(), err }
  end
  self.stats.evaluations = self.stats.evaluations + 1
  self.stats.evaluation_seconds = self.stats.evaluation_seconds + dt
  if self.on_evaluate then
    self.on_evaluate(node, dt)
  end
  return args, err, st.deps, { to = st.flow_to, from = st.flow_from }
end

-- Sets node's dependencies and data-flow edges from an evaluation.
local function set_links(node, deps, flow)
  node.deps, node.flow_to, node.flow_from = deps, flow.to, flow.from
end

local function where(decl)
  return string.format("%s:%d: %s %q", decl.file, decl.line, decl.name, decl.label)
end

local function new_node(ctrl, decl, module)
  local node = {
    id = decl.id, name = decl.name, label = decl.label, decl = decl, module = module,
    exports = {}, deps = {},
    health = { state = "unknown", message = "not started", updated = ffi_rt.time_now() },
  }
  node.ctx = component.new_ctx(ctrl, node)
  return node
end

-- Calls module.new(ctx, args) for node; returns true or nil and the message for users.
local function instantiate(node, args)
  component.begin(node.ctx)
  node.ctx:set_health("healthy", "started")
  local ok, inst = xpcall(node.module.new, debug.traceback, node.ctx, args)
  if not ok then
    component.release(node.ctx) -- what new() started before it raised
    return nil, errors.report(inst, node.id, nil, node.ctx.log)
  end
  node.instance, node.args = inst or {}, args
  return true
end

-- Pass 1 of apply, on demand for references: evaluates the component id of the
-- plan. Nothing running changes: a new component is created (not run); a
-- surviving one's new arguments wait in plan.pending; a component whose module
-- changed is replaced at commit (until then its old exports stand). Raises
-- "file:line: component: what" on any error.
function Controller:ensure(id, plan)
  if plan.settled then
    return self.nodes[id] or error("reference to a component that is not running: " .. id, 0)
  end
  local state = plan.state[id]
  if state == "ready" then
    return plan.replaced[id] or plan.nodes[id]
  elseif state == "building" then
    error("cycle through " .. id, 0)
  elseif state == "failed" then
    error(DEP_FAILED, 0) -- reported once, for the component itself
  end
  local decl = plan.declared[id]
  local existing = self.nodes[id]
  local survivor = existing and existing.module == plan.modules[id]
  local node = survivor and existing or new_node(self, decl, plan.modules[id])
  if existing and not survivor then
    plan.replaced[id] = existing
  end
  plan.nodes[id] = node
  plan.state[id] = "building"
  local args, err, deps, flow = self:evaluate(node, plan, decl)
  if not args then
    plan.state[id] = "failed"
    error(err == DEP_FAILED and err or (where(decl) .. ": " .. err), 0)
  end
  plan.state[id] = nil
  plan.deps[id], plan.flow[id] = deps, flow
  if survivor then
    if not schema.equal(args, node.args) then
      plan.pending[id] = args
    end
  elseif existing then
    plan.pending[id] = args -- created at commit, once the old instance is stopped
  else
    local ok, ierr = instantiate(node, args)
    if not ok then
      plan.state[id] = "failed"
      error(where(decl) .. ": " .. ierr, 0)
    end
    table.insert(plan.started, node)
  end
  plan.state[id] = "ready"
  return plan.replaced[id] or node
end

-- Calls the instance's update; a component without update is restarted. A
-- failure (what only running tells: a file that cannot be opened...) leaves the
-- component unhealthy with its previous arguments.
function Controller:update(node, args)
  local inst = node.instance
  if type(inst.update) == "function" then
    local ok, err = xpcall(inst.update, debug.traceback, inst, args)
    if not ok then
      local msg = errors.report(err, node.id, nil, node.ctx.log)
      node.ctx:set_health("unhealthy", "update: " .. msg)
      node.ctx.log:error("update failed; keeping the previous arguments", { err = msg })
      return
    end
    node.args = args
    if node.health.state == "unhealthy" and (node.health.message:find("^evaluating arguments")
      or node.health.message:find("^update: ")) then
      node.ctx:set_health("healthy", "updated")
    end
  else
    self:stop_node(node)
    local ok, err = instantiate(node, args)
    if not ok then
      node.ctx:set_health("unhealthy", "restart with new arguments: " .. err)
      return
    end
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
    component.forget(node.ctx, task)
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
      errors.describe(err, node.id)))
    node.restart_timer = scheduler.timer(delay, 0, function()
      node.restart_timer = nil
      if not node.stopping and node.instance == inst and ctrl.nodes[node.id] == node then
        node.ctx:set_health("healthy", "run restarted") -- until it fails again
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
      component.adopt(node.ctx, task)
      node.run_task = task
    end
  end
  launch()
end

-- Stops a node's instance: stop(), then what its context owns (moonwatch.component):
-- on_stop hooks, tasks cancelled, timers closed.
function Controller.stop_node(_, node)
  node.stopping = true
  local inst = node.instance
  if inst and type(inst.stop) == "function" then
    local ok, err = xpcall(inst.stop, debug.traceback, inst)
    if not ok then
      scheduler.report_error(node.id, "stop", err, err)
    end
  end
  if node.restart_timer then
    node.restart_timer:close()
    node.restart_timer = nil
  end
  component.release(node.ctx) -- its on_stop hooks, tasks and timers
  node.instance = nil
  node.started = false
  node.stopping = false
end

-- Evaluates the top-level blocks of plan for real (their values may be functions).
-- Returns nil or the problems.
local function evaluate_blocks(ctrl, plan)
  local problems = {}
  for _, name in ipairs(blocks.NAMES) do
    local b = plan.result[name]
    if b then
      local spec = args_spec(blocks[name])
      local ok, resolved = xpcall(ctrl.resolve, debug.traceback, ctrl, { plan = plan, deps = {} }, b.args, spec)
      if not ok then
        problems[#problems + 1] = fmt_problem({ file = b.file, line = b.line,
          msg = name .. ": " .. errors.report(resolved, name) })
      else
        local args, ps = schema.validate(spec.schema, resolved)
        local list = {}
        add_problems(list, ps, b.file, b.line, name)
        for _, p in ipairs(list) do
          problems[#problems + 1] = fmt_problem(p)
        end
        plan.blocks[name] = args
      end
    end
  end
  return #problems > 0 and problems or nil
end

--- Applies a plan, all or nothing. Pass 1 evaluates and validates every
--- component's arguments in dependency order and creates the new components
--- (not running yet); any error there stops what it created and changes nothing
--- else. Then the commit stops removed components, updates surviving ones in
--- place, replaces those whose module changed and starts the new ones.
--- Returns true or nil and the problems.
function Controller:apply(plan)
  plan.nodes, plan.started, plan.state, plan.deps, plan.pending, plan.replaced = {}, {}, {}, {}, {}, {}
  plan.flow = {}
  plan.pipeline_ctx = plan.result.ctx
  local problems, seen_problem = {}, {}
  for _, d in ipairs(plan.result.declarations) do
    local ok, err = xpcall(self.ensure, debug.traceback, self, d.id, plan)
    if not ok and err ~= DEP_FAILED then
      local msg = errors.report(err, "the loader")
      if not seen_problem[msg] then
        seen_problem[msg] = true
        problems[#problems + 1] = msg
      end
    end
  end
  if #problems == 0 then
    problems = evaluate_blocks(self, plan)
  end
  if problems then
    for i = #plan.started, 1, -1 do
      local node = plan.started[i]
      self:stop_node(node)
      node.ctx:set_health("exited", "the load failed")
    end
    -- the edges and proxies pass 1 made for components that do not run
    for id in pairs(plan.nodes) do
      if not self.nodes[id] then
        dataflow.forget(id)
      end
    end
    return nil, problems
  end

  -- Commit. The new order: dependencies first.
  local order, seen = {}, {}
  local function visit(id)
    if seen[id] then
      return
    end
    seen[id] = true
    for dep in pairs(plan.deps[id]) do
      if plan.nodes[dep] then
        visit(dep)
      end
    end
    order[#order + 1] = id
  end
  for _, d in ipairs(plan.result.declarations) do
    visit(d.id)
  end
  -- removed and replaced components stop first, in reverse start order
  for i = #self.order, 1, -1 do
    local id = self.order[i]
    local node = self.nodes[id]
    if node and (not plan.declared[id] or plan.replaced[id]) then
      self:stop_node(node)
      node.ctx:set_health("exited", plan.replaced[id] and "replaced (its module changed)" or "removed from the pipeline")
      if not plan.declared[id] then
        dataflow.forget(id)
        livedebug.forget(id)
        -- its series go from /metrics, as a removed Alloy component's registry does (a
        -- removed scrape must not go on reporting its targets)
        metrics.default:remove_component(id)
      end
    end
  end
  for id, node in pairs(plan.nodes) do
    node.decl = plan.declared[id]
    set_links(node, plan.deps[id], plan.flow[id])
  end
  self.nodes, self.order, self.current_plan = plan.nodes, order, plan
  for _, id in ipairs(order) do
    local node = self.nodes[id]
    local args = plan.pending[id]
    if plan.replaced[id] then
      local iok, ierr = instantiate(node, args)
      if not iok then
        node.ctx:set_health("unhealthy", "starting with the changed module: " .. ierr)
      end
    else
      if self.dirty[id] and node.instance then
        -- a component it reads was just updated and exports something new: evaluate with that
        self.dirty[id] = nil
        plan.settled = true
        local fresh, ferr, fdeps, fflow = self:evaluate(node, plan)
        plan.settled = nil
        set_links(node, fdeps, fflow)
        if fresh then
          args = not schema.equal(fresh, node.args) and fresh or nil
        else
          args = nil
          node.ctx:set_health("unhealthy", "evaluating arguments: " .. ferr)
          node.ctx.log:error("failed to evaluate arguments; keeping the last good ones", { err = ferr })
        end
      end
      if args then
        self:update(node, args)
      elseif node.health.message:find("^evaluating arguments") and node.health.state == "unhealthy"
        and not self.dirty[id] then
        node.ctx:set_health("healthy", "arguments evaluate again")
      end
    end
  end
  for _, id in ipairs(order) do
    local node = self.nodes[id]
    if node.instance and not node.started then
      self:start_run(node)
    end
  end
  for id in pairs(plan.replaced) do
    if self.nodes[id].instance then
      self:exports_changed(self.nodes[id]) -- its dependents read the old instance's exports
    end
  end
  log.configure({ level = plan.blocks.logging.level, format = plan.blocks.logging.format,
    write_to = plan.blocks.logging.write_to })
  tracing.configure(plan.blocks.tracing)
  return true
end

--- Loads (first time) or reloads the pipeline file. On any error the running
--- graph is untouched. Returns true or nil and a list of problems.
function Controller:load(file)
  file = file or self.file
  self.file = file
  local t0 = ffi_rt.monotonic()
  local t0_ns = ffi_rt.C.mw_ffi_trace_now_ns()
  self.trace_evals = {} -- recorded before the tracing block is known: spans once it is
  local plan, problems = self:plan(file)
  local ok = false
  if plan then
    ok, problems = self:apply(plan)
  end
  self:trace_evaluation("GraphEvaluate", t0_ns, not ok and table.concat(problems or {}, "; ") or nil,
    self.generation > 0)
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
  return nil, redact.value(problems)
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

-- The spans of a traced evaluation (self.trace_evals): a root span name from start_ns to now
-- with an EvaluateNode child per component evaluated (attribute node_id), as Alloy's loader.
function Controller:trace_evaluation(name, start_ns, err, reload)
  local evals = self.trace_evals
  self.trace_evals = nil
  local root = tracing.start(name, nil, tracing.INTERNAL, start_ns)
  if not root.sampled then
    return
  end
  root:set("file", self.file)
  root:set("reload", reload)
  for _, e in ipairs(evals) do
    local span = tracing.start("EvaluateNode", root, tracing.INTERNAL, e[2])
    span:set("node_id", e[1])
    span:finish(e[4], e[3])
  end
  root:finish(err)
end

--- Re-evaluates the dirty components in dependency order.
function Controller:reevaluate()
  local dirty = self.dirty
  self.dirty = {}
  local plan = self.current_plan
  local t0_ns = tracing.enabled() and ffi_rt.C.mw_ffi_trace_now_ns()
  if t0_ns then
    self.trace_evals = {}
  end
  for _, id in ipairs(self.order) do
    local node = self.nodes[id]
    if dirty[id] and node and node.instance then
      plan.settled = true
      local args, err, deps, flow = self:evaluate(node, plan)
      plan.settled = nil
      set_links(node, deps, flow)
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
  if t0_ns then
    self:trace_evaluation("GraphEvaluatePartial", t0_ns, nil, true)
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
