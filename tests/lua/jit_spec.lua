-- The hot Lua loops compile: a Lua component reading a batch (moonwatch.batch.samples) and the
-- miss path of prometheus.relabel (relabel.apply with C programs, relabel.encode) run
-- thousands of times under LuaJIT's verbose trace log (fixtures/jit_workload.lua, jit.v as
-- `luajit -jv`). A trace that aborts for something the JIT cannot compile ("NYI": a
-- closure made per call, an unsupported built-in) in moonwatch's own Lua leaves that code
-- interpreted; none may. Trace aborts that LuaJIT retries ("leaving loop in root trace")
-- are how it forms traces, not failures.
local proc = require("helpers.proc")

local WORKLOAD = proc.source .. "/tests/lua/fixtures/jit_workload.lua"

-- The jit.v log of one workload: { started = { [file] = n }, nyi = { "file:line reason" } }.
local function traces(which)
  local out = os.tmpname()
  local rc = os.execute(string.format("%s lua %s %s %s", proc.quote(proc.bin), proc.quote(WORKLOAD),
    proc.quote(out), which))
  assert.equals(0, rc)
  local started, nyi = {}, {}
  for line in io.lines(out) do
    local file = line:match("^%[TRACE%s+%d+ (%S-):%d+")
    if file then
      started[file] = (started[file] or 0) + 1
    end
    -- "[TRACE --- (9/1) schema.lua:131 -- NYI: bytecode 51 at schema.lua:136]" (side traces
    -- name their parent first; jit.v names files without their folder)
    local reason, at = line:match("^%[TRACE %-%-%- .-%-%- (NYI.-) at (%S+)%]$")
    if at and not at:find("^jit_workload%.lua") then
      nyi[#nyi + 1] = at .. " " .. reason
    end
  end
  os.remove(out)
  return { started = started, nyi = nyi }
end

local function started_in(t, name)
  local n = 0
  for file, k in pairs(t.started) do
    if file:sub(-#name) == name then
      n = n + k
    end
  end
  return n
end

describe("the JIT", function()
  it("compiles a Lua component's loop over a batch (moonwatch.batch.samples)", function()
    local t = traces("batch")
    assert.same({}, t.nyi)
    assert.is_true(started_in(t, "samples.lua") > 0, "no trace started in moonwatch/batch/samples.lua")
  end)

  it("compiles prometheus.relabel's miss path (relabel.apply with C rules, relabel.encode)", function()
    local t = traces("relabel")
    assert.same({}, t.nyi)
    assert.is_true(started_in(t, "relabel.lua") > 0, "no trace started in relabel.lua")
  end)

  it("compiles loki.process's per-entry loops (json, labels, timestamp, regex, match, drop, static_labels)", function()
    local t = traces("loki_process")
    assert.same({}, t.nyi)
    assert.is_true(started_in(t, "stages.lua") > 0, "no trace started in loki/process/stages.lua")
    assert.is_true(started_in(t, "init.lua") > 0, "no trace started in loki/process/init.lua")
  end)
end)
