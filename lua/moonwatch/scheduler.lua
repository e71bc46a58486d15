--- moonwatch.scheduler: coroutines on the libev loop.
-- Each component's code runs in a task (a coroutine). Blocking-looking calls
-- (sleep, waiting on an event) yield the task; the loop resumes it. Errors in a
-- task or a timer callback are caught with a traceback, logged with the
-- component id, counted, and the loop goes on.
local core = require("moonwatch.core")
local log = require("moonwatch.log")
local errmod = require("moonwatch.errors")

local co_create, co_resume, co_yield, co_running, co_status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.status
local traceback = debug.traceback

local M = {}

--- Raised inside a task that is cancelled; never reported as an error.
M.CANCELLED = setmetatable({}, { __tostring = function()
  return "cancelled"
end })

-- coroutine -> task, while the task runs. Weak both ways: a task's table holds
-- its coroutine (task.co), so with weak keys alone no entry would ever go (Lua
-- 5.1 has no ephemerons): every task ever spawned, one per HTTP request among
-- them, stayed. A finished task is removed at once; a task that nothing can
-- wake any more (no timer, no waiter holds it) is collected.
local tasks = setmetatable({}, { __mode = "kv" })
local counts = {} -- component id ("" for none) -> count of caught errors

--- Called with the component id ("" for none) of every caught error (for metrics).
M.on_error_counted = nil

local function count_error(component_id)
  local id = component_id or ""
  counts[id] = (counts[id] or 0) + 1
  if M.on_error_counted then
    M.on_error_counted(id)
  end
end

--- Caught errors so far, by component id ("" when none).
---@return table<string, integer>
function M.error_counts()
  return counts
end

-- Logs a caught error as users may see it (an internal one as "internal error
-- in ...", its traceback at debug level) and counts it.
local function report(component_id, where, err, tb)
  count_error(component_id)
  local logger = log.new({ component_id = component_id })
  logger:error(where .. " failed", { err = errmod.report(err, component_id or where, tb, logger) })
end
M.report_error = report

core.on_error(function(msg, where)
  report(nil, where, msg)
end)

local function finish(task, ok, err, tb)
  task.done = true
  tasks[task.co] = nil
  if not ok and err == M.CANCELLED then
    ok, err = true, nil
  end
  if not ok then
    report(task.component_id, "task " .. task.name, err, tb)
  end
  task.ok, task.err, task.traceback = ok, err, tb
  local waiters = task.waiters
  task.waiters = nil
  if task.on_exit then
    local cb_ok, cb_err = xpcall(task.on_exit, traceback, task, ok, err, tb)
    if not cb_ok then
      report(task.component_id, "exit handler of task " .. task.name, cb_err)
    end
  end
  for _, w in ipairs(waiters or {}) do
    M.wake(w)
  end
end

local function step(task, ...)
  if task.done then
    return
  end
  local ok, err = co_resume(task.co, ...)
  if not ok then
    finish(task, false, err, err ~= M.CANCELLED and traceback(task.co, tostring(err)) or nil)
  elseif co_status(task.co) == "dead" then
    finish(task, true)
  end
end

--- Starts fn(...) in a new task; it runs at once until its first yield.
---@param fn function
---@param opts table|nil { name = "...", component_id = "...", on_exit = function(task, ok, err, traceback) }
---  (err is what was raised; traceback, when it failed, the stack as text: for the debug log only)
---@return table task
function M.spawn(fn, opts, ...)
  opts = opts or {}
  local task = {
    name = opts.name or "task",
    component_id = opts.component_id,
    on_exit = opts.on_exit,
  }
  task.co = co_create(fn)
  tasks[task.co] = task
  step(task, ...)
  return task
end

--- The running task, or nil outside of one.
function M.current()
  local co = co_running()
  return co and tasks[co]
end

local function current_or_error(what)
  local task = M.current()
  if not task then
    error(what .. " called outside a task (use scheduler.spawn)", 3)
  end
  return task
end

--- Suspends the running task until M.wake(task, ...) is called; returns what wake passed.
--- A task cancelled while it ran (not suspended) raises M.CANCELLED here at once.
function M.suspend()
  local task = current_or_error("suspend")
  if task.cancelled then
    error(M.CANCELLED, 0)
  end
  task.suspended = true
  local res = { co_yield() }
  task.suspended = false
  if task.cancelled then
    error(M.CANCELLED, 0)
  end
  return unpack(res)
end

--- Resumes a task suspended in M.suspend (or M.sleep); no-op otherwise.
function M.wake(task, ...)
  if task.suspended and not task.done then
    step(task, ...)
  end
end

--- Suspends the running task for `seconds`.
---@param seconds number
function M.sleep(seconds)
  local task = current_or_error("sleep")
  local timer = core.timer(math.max(seconds, 0), 0, function()
    M.wake(task)
  end, task.name)
  task.timer = timer
  local ok, err = pcall(M.suspend)
  task.timer = nil
  timer:close()
  if not ok then
    error(err, 0)
  end
end

--- Cancels a task: a suspended task is resumed with M.CANCELLED raised at its
--- yield point (so its cleanup runs); a task that never yields again just ends.
function M.cancel(task)
  if task.done or task.cancelled then
    return
  end
  task.cancelled = true
  if task.suspended then
    step(task)
  end
end

--- Suspends the running task until `task` ends; returns its ok, err.
function M.join(task)
  if not task.done then
    local me = current_or_error("join")
    task.waiters = task.waiters or {}
    table.insert(task.waiters, me)
    while not task.done do
      M.suspend()
    end
  end
  return task.ok, task.err
end

--- A repeating or one-shot timer whose callback errors are caught and
--- attributed to opts.component_id. Returns the handle (stop/close/again).
---@param after number seconds before the first call
---@param every number|nil seconds between calls (nil or 0: once)
---@param fn function
---@param opts table|nil { name, component_id }
function M.timer(after, every, fn, opts)
  opts = opts or {}
  local name = opts.name or "timer"
  return core.timer(after, every or 0, function()
    local ok, err = xpcall(fn, traceback)
    if not ok then
      report(opts.component_id, "timer " .. name, err)
    end
  end, name)
end

--- Calls fn(signum) on each delivery of signal `signum` (a name such as "SIGHUP" or a number).
function M.on_signal(signum, fn)
  if type(signum) == "string" then
    signum = assert(core[signum], "unknown signal")
  end
  return core.signal(signum, function(n)
    local ok, err = xpcall(fn, traceback, n)
    if not ok then
      report(nil, "signal handler", err)
    end
  end)
end

--- The live tasks (the tables spawn returned: name, component_id, co, suspended, timer ...), for
--- /debug/pprof/goroutine.
---@return table[]
function M.list()
  local out = {}
  for _, t in pairs(tasks) do
    out[#out + 1] = t
  end
  return out
end

--- Loop time in seconds (cached per loop iteration).
M.now = core.now

--- Runs the loop until M.stop(); returns the exit code. The binary runs the
--- loop itself; this is for tests and tools.
M.run = core.run

--- Stops the loop; the process exits with `code`.
M.stop = core.stop

return M
