--- moonwatch.component: the component context, the API for component authors.
-- A component is a Lua module (stdlib/<namespace>/<name>.lua, or a folder
-- <namespace>/<name>/init.lua with its helpers beside it) returning a plain table:
--
--   return {
--     name = "mycorp.filter",                       -- its name in pipelines
--     doc = "...",
--     args = { <schema>: name = { type = ..., default = ..., doc = ... } },
--     exports = { receiver = { type = "receiver", doc = "..." } },
--     new = function(ctx, args) ... return instance end,
--   }
--
-- and the instance may implement run(ctx) (in a task; restarted with backoff when it
-- raises), update(args) (new arguments on reload; without it the component is made
-- anew), stop() and debug_info(). stdlib components use nothing but this API.
--
-- new(ctx, args) gets a context (Ctx, below) that stays the component's for its whole
-- life. Everything started through it is owned by the controller: the tasks of
-- ctx:spawn, the timers of ctx:timer and the hooks of ctx:on_stop end with the
-- component, when it is removed from the pipeline, made anew, when the reload that
-- created it fails, and at exit. Its fields:
--   ctx.id            the component's id ("prometheus.scrape.default")
--   ctx.name          its name ("prometheus.scrape"), ctx.label its label ("default")
--   ctx.log           a moonwatch.log logger that adds component_id to each line
--   ctx.storage_path  a directory of its own under --storage.path (created by whoever uses it)
--   ctx.settings      the process's settings (read only)
local scheduler = require("moonwatch.scheduler")
local schema = require("moonwatch.schema")
local log = require("moonwatch.log")
local ffi_rt = require("moonwatch.ffi")
local dataflow = require("moonwatch.dataflow")
local redact = require("moonwatch.redact")

local M = {}

--- The health states a component reports.
M.HEALTH_TYPES = { "healthy", "unhealthy", "unknown", "exited" }
local HEALTH = {}
for _, s in ipairs(M.HEALTH_TYPES) do
  HEALTH[s] = true
end

---@class Ctx
local Ctx = {}
Ctx.__index = Ctx
M.Ctx = Ctx

--- Sets (merges) the component's exports; the components that read them are
--- re-evaluated when they change.
---@param values table export name -> value (a receiver: moonwatch.receiver)
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
    self._owner:exports_changed(node)
  end
end

--- Reports health: "healthy", "unhealthy", "unknown" or "exited", with a message
--- (shown in the debug API and moonwatch_component_health; secrets are redacted).
---@param state string
---@param message string|nil
function Ctx:set_health(state, message)
  assert(HEALTH[state], "unknown health state")
  local h = self._node.health
  message = redact.text(message or "") -- a message may quote a server or an error: no secret in it
  if h.state ~= state or h.message ~= message then
    h.state, h.message, h.updated = state, message, ffi_rt.time_now()
  end
end

--- Starts fn(...) in a task (a coroutine on the event loop) owned by this component:
--- it is cancelled when the component stops. Its errors are logged and counted.
---@param fn function
---@param name string|nil shown in errors (default: the component's id)
---@return table task (moonwatch.scheduler)
function Ctx:spawn(fn, name, ...)
  local own = self._own
  local task = scheduler.spawn(fn, { name = name or self.id, component_id = self.id, on_exit = function(t)
    own.tasks[t] = nil -- a component that starts tasks as it goes (one per target) keeps only the live ones
  end }, ...)
  if not task.done then
    own.tasks[task] = true
  end
  return task
end

local Timer = {}
Timer.__index = Timer

--- Closes the timer (it is also closed when the component stops). Closing twice is fine.
function Timer:close()
  if self.handle then
    self.handle:close()
    self.handle = nil
    self.own.timers[self] = nil
  end
end

--- Stops the timer without closing it.
function Timer:stop()
  if self.handle then
    self.handle:stop()
  end
end

--- Restarts a repeating timer's period.
function Timer:again()
  if self.handle then
    self.handle:again()
  end
end

--- A timer owned by this component: fn runs after `after` seconds, then every `every`
--- seconds (nil or 0: once), until it is closed or the component stops. fn runs on the
--- event loop, not in a task: it must not sleep (spawn a task for that). Its errors are
--- logged and counted.
---@param after number
---@param every number|nil
---@param fn function
---@param name string|nil
---@return table timer with close(), stop(), again()
function Ctx:timer(after, every, fn, name)
  local t = setmetatable({ own = self._own }, Timer)
  t.handle = scheduler.timer(after, every, fn, { name = name or self.id, component_id = self.id })
  self._own.timers[t] = true
  return t
end

--- Sleeps secs seconds (in a task: run(), or one of ctx:spawn); raises when the task is
--- cancelled (the component stops), so code after it does not run.
---@param secs number
function Ctx.sleep(_, secs)
  return scheduler.sleep(secs)
end

--- Registers fn() to run when the component stops (after its stop(), before its tasks
--- are cancelled and its timers closed): to release what it holds outside the tasks and
--- timers of this context (files, registrations, C objects). Hooks run once, last
--- registered first; errors are logged and counted.
---@param fn function
function Ctx:on_stop(fn)
  assert(type(fn) == "function", "on_stop: expected a function")
  local hooks = self._own.hooks
  hooks[#hooks + 1] = fn
end

--- Whether the component has stopped (its tasks are cancelled; a callback that still runs
--- should do nothing).
---@return boolean
function Ctx:stopped()
  return self._own.stopped
end

--- Counts n samples that reached this component from component from_id other than through
--- one of its receivers (a scrape of an exporter's in-memory target): they show on the
--- from_id -> this component edge of the data-flow graph (debug API and UI rates).
---@param from_id string
---@param n integer
function Ctx:count_in(from_id, n)
  dataflow.add(from_id, self.id, n)
end

local function new_own(stopped)
  return { tasks = {}, timers = {}, hooks = {}, stopped = stopped }
end

--- A context for node (the controller's record of one component: id, name, label,
--- exports, health, started) of owner (the controller: settings, exports_changed(node)).
---@return Ctx
function M.new_ctx(owner, node)
  return setmetatable({
    id = node.id, name = node.name, label = node.label,
    log = log.new({ component_id = node.id }),
    storage_path = (owner.settings.storage_path or "./data") .. "/" .. node.id,
    settings = owner.settings,
    _node = node, _owner = owner, _own = new_own(false),
  }, Ctx)
end

--- Marks ctx as serving a new instance (after M.release): ctx:stopped() is false again.
function M.begin(ctx)
  ctx._own.stopped = false
end

--- Adopts a task the controller started for the component (its run()): cancelled with it.
function M.adopt(ctx, task)
  if not task.done then
    ctx._own.tasks[task] = true
  end
end

--- Forgets a task that ended.
function M.forget(ctx, task)
  ctx._own.tasks[task] = nil
end

--- Ends everything ctx owns: runs its on_stop hooks, cancels its tasks, closes its
--- timers. ctx:stopped() is true until M.begin: then the context serves a new instance
--- of the component (a restart).
---@param ctx Ctx
function M.release(ctx)
  local own = ctx._own
  ctx._own = new_own(true)
  own.stopped = true
  for i = #own.hooks, 1, -1 do
    local ok, err = xpcall(own.hooks[i], debug.traceback)
    if not ok then
      scheduler.report_error(ctx.id, "on_stop", err, err)
    end
  end
  for task in pairs(own.tasks) do
    scheduler.cancel(task)
  end
  for t in pairs(own.timers) do
    t:close()
  end
end

return M
