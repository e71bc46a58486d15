local scheduler = require("moonwatch.scheduler")
local core = require("moonwatch.core")
local loop = require("helpers.loop")
local log = require("moonwatch.log")

describe("scheduler", function()
  local lines
  setup(function()
    lines = {}
    log.configure({ out = { write = function(_, ...)
      table.insert(lines, table.concat({ ... }))
    end, flush = function() end } })
  end)
  teardown(function()
    log.configure({ out = io.stderr })
  end)

  it("runs a task at once until its first yield", function()
    local order = {}
    scheduler.spawn(function()
      order[#order + 1] = "a1"
      scheduler.sleep(0.01)
      order[#order + 1] = "a2"
    end)
    order[#order + 1] = "main"
    assert.same({ "a1", "main" }, order)
    assert.truthy(loop.run_until(function()
      return #order == 3
    end))
    assert.same({ "a1", "main", "a2" }, order)
  end)

  it("wakes sleepers in deadline order", function()
    local order = {}
    for _, d in ipairs({ 0.05, 0.01, 0.03 }) do
      scheduler.spawn(function()
        scheduler.sleep(d)
        order[#order + 1] = d
      end)
    end
    loop.run_until(function()
      return #order == 3
    end)
    assert.same({ 0.01, 0.03, 0.05 }, order)
  end)

  it("sleep waits at least the duration", function()
    local t0, t1 = core.update_now(), nil
    scheduler.spawn(function()
      scheduler.sleep(0.05)
      t1 = core.update_now()
    end)
    loop.run_until(function()
      return t1
    end)
    assert.is_true(t1 - t0 >= 0.049)
  end)

  it("catches a task's error with a traceback, logs the component id and counts it", function()
    local before = scheduler.error_counts()["test.comp"] or 0
    local exited
    scheduler.spawn(function()
      scheduler.sleep(0.001)
      error("kaboom")
    end, { name = "t", component_id = "test.comp", on_exit = function(_, ok, err, tb)
      exited = { ok, err, tb }
    end })
    loop.run_until(function()
      return exited
    end)
    assert.is_false(exited[1])
    assert.matches("kaboom$", exited[2])
    assert.matches("stack traceback", exited[3])
    assert.equals(before + 1, scheduler.error_counts()["test.comp"])
    assert.matches("component_id=test.comp", lines[#lines])
    assert.matches("level=error", lines[#lines])
  end)

  it("keeps the loop going after an error in a timer callback", function()
    local ticks = 0
    local t = scheduler.timer(0.001, 0.001, function()
      ticks = ticks + 1
      if ticks == 1 then
        error("first tick fails")
      end
    end, { component_id = "test.timer" })
    loop.run_until(function()
      return ticks >= 3
    end)
    t:close()
    assert.is_true(ticks >= 3)
    assert.is_true((scheduler.error_counts()["test.timer"] or 0) >= 1)
  end)

  it("cancels a sleeping task and runs its cleanup", function()
    local cleaned = false
    local task = scheduler.spawn(function()
      local _, err = pcall(scheduler.sleep, 10)
      cleaned = true
      error(err, 0)
    end)
    scheduler.cancel(task)
    assert.is_true(cleaned)
    assert.is_true(task.done)
    assert.is_true(task.ok) -- cancellation is not an error
  end)

  it("ends a task cancelled while it runs at its next suspend, without waiting for a wake", function()
    -- a task wakes another, which cancels the first while it is running (not suspended)
    local reached
    local second = scheduler.spawn(function()
      scheduler.cancel(scheduler.suspend())
    end)
    local first = scheduler.spawn(function()
      scheduler.wake(second, scheduler.current())
      reached = true
      scheduler.suspend() -- would wait forever for a wake that never comes
      reached = "after suspend"
    end)
    assert.is_true(reached)
    assert.is_true(first.done)
    assert.is_true(first.ok)
    assert.is_true(second.done)
  end)

  it("join waits for another task", function()
    local result
    local child = scheduler.spawn(function()
      scheduler.sleep(0.01)
    end)
    scheduler.spawn(function()
      scheduler.join(child)
      result = child.done
    end)
    loop.run_until(function()
      return result
    end)
    assert.is_true(result)
  end)

  it("refuses sleep outside a task", function()
    assert.has_error(function()
      scheduler.sleep(1)
    end, "sleep called outside a task (use scheduler.spawn)")
  end)

  it("delivers signals to handlers", function()
    local got
    local h = scheduler.on_signal("SIGUSR1", function(n)
      got = n
    end)
    os.execute("kill -USR1 " .. io.open("/proc/self/stat"):read("*l"):match("^(%d+)"))
    loop.run_until(function()
      return got
    end)
    h:close()
    assert.equals(core.SIGUSR1, got)
  end)
end)
