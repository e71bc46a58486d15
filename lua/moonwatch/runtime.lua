--- moonwatch.runtime: what `moonwatch run` and `moonwatch check` do.
-- run: first load (all-or-nothing), HTTP server, signals (SIGINT/SIGTERM stop
-- the components in reverse dependency order within --shutdown.timeout, SIGHUP
-- reloads), then the binary runs the loop until stop.
local controller_mod = require("moonwatch.controller")
local duration = require("moonwatch.duration")
local scheduler = require("moonwatch.scheduler")
local core = require("moonwatch.core")
local log = require("moonwatch.log")
local http_api = require("moonwatch.http_api")
local selfmetrics = require("moonwatch.selfmetrics")
local budget = require("moonwatch.budget")
local native_core = require("moonwatch.native.core")

local M = {}

--- Seconds between two heap trims (native_core.heap_trim) while running.
M.HEAP_TRIM_EVERY = 10

local function print_problems(problems)
  for _, p in ipairs(problems) do
    io.stderr:write(p, "\n")
  end
end

--- Sets the budget of user code from --pipeline.eval-timeout; false (and a
--- message on stderr) when the flag is not a positive duration.
function M.configure_budget(settings)
  local limit, err = duration.parse(settings.eval_timeout or "5s")
  if not limit or limit <= 0 then
    io.stderr:write("moonwatch: --pipeline.eval-timeout: ", err or "must be greater than 0s", "\n")
    return false
  end
  budget.configure(limit)
  return true
end

-- Arms the C watchdog that ends the process when a stop does not finish within
-- the shutdown timeout, even with the loop stuck in Lua code.
local function arm_watchdog(rt)
  local ok, err = native_core.watchdog_arm(rt.shutdown_timeout, log.format() == "json")
  if not ok then
    log.warn("cannot arm the shutdown watchdog", { err = err })
  end
end

--- A pipeline is trusted code with moonwatch's rights, but os.exit in it (in
--- the file, an argument function, a rule) is refused: it would end moonwatch
--- with no component stopped and no word. Any other exit that does not come
--- through moonwatch's own path is logged by the C exit guard.
local function guard_exits()
  os.exit = function() -- luacheck: ignore 122
    error("os.exit is refused in a pipeline: it would end moonwatch without stopping its components"
      .. " (stop moonwatch with SIGTERM)", 2)
  end
  native_core.exit_guard_arm(log.format() == "json")
end

--- `moonwatch check`: loads and validates the pipeline, runs nothing.
---@return integer exit code
function M.check(settings)
  if not M.configure_budget(settings) then
    return 2
  end
  guard_exits()
  local ctrl = controller_mod.new(settings)
  local plan, problems = ctrl:plan(settings.file)
  if not plan then
    print_problems(problems)
    return 1
  end
  io.stdout:write(string.format("%s: ok (%d components)\n", settings.file, #plan.result.declarations))
  return 0
end

--- Reloads the pipeline from its file; returns true or nil, problems.
function M.reload(rt)
  local ok, problems = rt.controller:load()
  if ok then
    arm_watchdog(rt) -- the logging block may have changed the format
    native_core.exit_guard_arm(log.format() == "json")
    log.info("reloaded the pipeline", { file = rt.settings.file, components = #rt.controller.order })
    return true
  end
  log.error("reload failed; the running pipeline is unchanged", { file = rt.settings.file,
    err = table.concat(problems, "\n") })
  return nil, problems
end

--- Stops components in reverse dependency order and exits the loop with code 0,
--- or after the shutdown timeout whatever is left.
function M.shutdown(rt, signame)
  if rt.stopping then
    log.warn("second signal during shutdown: exiting now")
    core.stop(0)
    return
  end
  rt.stopping = true
  log.info("shutting down", { signal = signame })
  -- The components get the shutdown timeout less a margin (a tenth, at most 1s)
  -- to stop; at the timeout itself the C watchdog (armed at start) ends the
  -- process if it is still there, even with the loop stuck in Lua code.
  local deadline = rt.shutdown_timeout - math.min(1, rt.shutdown_timeout / 10)
  scheduler.timer(deadline, 0, function()
    log.warn("shutdown timed out; exiting with components still stopping",
      { timeout = duration.format(rt.shutdown_timeout) })
    core.stop(0)
  end, { name = "shutdown deadline" })
  scheduler.spawn(function()
    log.flush() -- the lines until now reach the logging block's write_to
    require("moonwatch.tracing").flush() -- the spans finished until now reach tracing's write_to
    rt.controller:stop()
    if rt.server then
      rt.server:close()
    end
    log.info("shutdown complete")
    core.stop(0)
  end, { name = "shutdown" })
end

--- `moonwatch run`: returns an exit code when it cannot start, or nil and the
--- binary runs the loop.
function M.start(settings)
  local timeout, terr = duration.parse(settings.shutdown_timeout)
  if not timeout then
    io.stderr:write("moonwatch: --shutdown.timeout: ", terr, "\n")
    return 2
  end
  local _, herr = http_api.server_options(settings.http)
  if herr then
    io.stderr:write("moonwatch: ", herr, "\n")
    return 2
  end
  if not M.configure_budget(settings) then
    return 2
  end
  guard_exits()
  local rt = { settings = settings, shutdown_timeout = timeout }
  M.current = rt
  core.ignore_signal(core.SIGPIPE)
  rt.controller = controller_mod.new(settings)
  selfmetrics.install()
  selfmetrics.attach_controller(rt.controller)
  rt.reload = function()
    return M.reload(rt)
  end
  -- The server answers /-/ready with 503 until the first load is done.
  local server, err = http_api.start(rt)
  if not server then
    io.stderr:write("moonwatch: ", err, "\n")
    return 1
  end
  rt.server = server
  local ok, problems = rt.controller:load(settings.file)
  if not ok then
    print_problems(problems)
    server:close()
    return 1
  end
  rt.ready = true
  scheduler.on_signal("SIGINT", function()
    M.shutdown(rt, "SIGINT")
  end)
  scheduler.on_signal("SIGTERM", function()
    M.shutdown(rt, "SIGTERM")
  end)
  scheduler.on_signal("SIGHUP", function()
    M.reload(rt)
  end)
  arm_watchdog(rt) -- after the loop's own handlers of SIGINT and SIGTERM: it chains to them
  -- What tables free between live heap blocks (grown indexes, compacted label
  -- stores, indexes dropped between scrapes) stays resident until trimmed:
  -- every 10 s (about a millisecond per 100 MB of heap), RSS follows the heap.
  scheduler.timer(M.HEAP_TRIM_EVERY, M.HEAP_TRIM_EVERY, function()
    native_core.heap_trim()
  end, { name = "heap trim" })
  log.info("pipeline running", { file = settings.file, components = #rt.controller.order,
    http = rt.server:addr() })
  return nil
end

return M
