--- moonwatch.budget: a time budget for every evaluation of users' Lua code
-- (the pipeline file, argument functions, Lua relabel rules), so that a loop in
-- a pipeline cannot freeze the process (one thread runs Lua: HTTP, scrapes and
-- signals would wait for it).
--
-- A count hook (debug.sethook) checks the monotonic clock every COUNT VM
-- instructions while user code is evaluated; past the deadline it raises
-- "file:line: evaluation took longer than 5s" at the user's line. LuaJIT does
-- not call hooks in JIT-compiled traces, so the functions of a pipeline file
-- are never compiled (jit.off on its chunk, recursively, before it runs: see
-- M.prepare); they are interpreted, and the hook sees every loop of them.
-- Once the deadline has passed the hook runs at every instruction, so a pcall
-- in the user's loop cannot swallow the error and go on; it raises only in
-- user code, never in moonwatch's own (which then finishes its step).
--
-- LuaJIT's hooks are global (not per coroutine): the hook is set only while a
-- budgeted call runs, and checks only the coroutine that started it.
local ffi_rt = require("moonwatch.ffi")
local errors = require("moonwatch.errors")
local duration = require("moonwatch.duration")

local sethook, getinfo, co_running = debug.sethook, debug.getinfo, coroutine.running
local monotonic = ffi_rt.monotonic

local M = {}

--- Seconds an evaluation of user code may take (--pipeline.eval-timeout).
M.limit = 5

local COUNT = 1000 -- instructions between clock checks (a few microseconds)

local active -- { deadline, co, expired } while a budgeted call runs

--- Sets the budget in seconds.
---@param seconds number
function M.configure(seconds)
  M.limit = seconds
end

--- Turns JIT compilation off for a chunk of user code and every function
--- defined in it, so that the budget's hook sees its loops. Returns the chunk.
---@param chunk function
function M.prepare(chunk)
  jit.off(chunk, true)
  return chunk
end

local function message(info)
  local what = "evaluation took longer than " .. duration.format(M.limit)
  if info then
    return string.format("%s:%d: %s", info.source:sub(2), info.currentline, what)
  end
  return what
end
M.message = message

local ours = {} -- source -> true when it is moonwatch's own (errors.is_source, memoized)
local function is_ours(source)
  local v = ours[source]
  if v == nil then
    v = errors.is_source(source)
    ours[source] = v
  end
  return v
end

local hook
hook = function()
  local a = active
  if not a or co_running() ~= a.co then
    return
  end
  if not a.expired then
    if monotonic() < a.deadline then
      return
    end
    a.expired = true
    sethook(hook, "", 1) -- from now on every instruction is checked
  end
  local info = getinfo(2, "Sl")
  if not info or info.what == "C" or is_ours(info.source) then
    return -- moonwatch's own code: raise when user code runs again
  end
  error(message(info), 0)
end

local function finish(ok, ...)
  active = nil
  sethook()
  return ok, ...
end

--- xpcall(fn, handler, ...) with the budget: fn and what it calls may run for
--- M.limit seconds, then "file:line: evaluation took longer than N" is raised
--- where the user's code runs. Inside a budgeted call it is a plain xpcall
--- (the outer budget counts).
---@return boolean ok, any ...
function M.xpcall(fn, handler, ...)
  if active then
    return xpcall(fn, handler, ...)
  end
  active = { deadline = monotonic() + M.limit, co = co_running() }
  sethook(hook, "", COUNT)
  return finish(xpcall(fn, handler, ...))
end

local function rethrow(ok, ...)
  if not ok then
    error((...), 0)
  end
  return ...
end

--- Calls fn(...) (user code) with the budget; an error (the budget's
--- included) propagates as a string with the user's file:line (errors.from_user).
function M.call(fn, ...)
  return rethrow(M.xpcall(fn, errors.from_user, ...))
end

--- True when err is the budget's error.
function M.is_timeout(err)
  return type(err) == "string" and err:find("evaluation took longer than ", 1, true) ~= nil
end

return M
