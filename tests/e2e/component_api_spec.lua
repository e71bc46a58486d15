-- End-to-end: the component context owns what a component starts (moonwatch.component):
-- its timers, tasks and on_stop hooks end when the component is removed by a reload and
-- when the reload that created it fails, through `moonwatch run`.
local proc = require("helpers.proc")

local FIXTURES = proc.source .. "/tests/lua/fixtures/components"
local tmp = proc.tmpdir()

local function lines(path)
  local out = {}
  local f = io.open(path)
  if f then
    for l in f:lines() do
      out[#out + 1] = l
    end
    f:close()
  end
  return out
end

local function count(list, s)
  local n = 0
  for _, l in ipairs(list) do
    if l == s then
      n = n + 1
    end
  end
  return n
end

-- Waits (up to 10 s) until the file has line s.
local function wait_line(path, s)
  for _ = 1, 100 do
    if count(lines(path), s) > 0 then
      return true
    end
    os.execute("sleep 0.1")
  end
  return false
end

describe("the component context", function()
  it("ends a component's timers, tasks and on_stop hooks on removal and on a failed reload", function()
    local out = tmp .. "/owner.txt"
    os.remove(out)
    local file = tmp .. "/owner.lua"
    proc.write(file, string.format('test.owner "a" { out = %q }\n', out))
    local h = proc.start_run(file, { "--component.path=" .. FIXTURES, "--storage.path=" .. tmp .. "/owner-data" })
    local ok, err = pcall(function()
      assert.is_true(wait_line(out, "a tick") and wait_line(out, "a task"), table.concat(lines(out), "\n"))

      -- a reload that fails: b was made (its timer, task and hook started), then c failed
      proc.write(file, string.format('test.owner "a" { out = %q }\ntest.owner "b" { out = %q }\n'
        .. 'test.owner "c" { out = %q, fail_new = true }\n', out, out, out))
      local status = proc.http("POST", h.base .. "/-/reload")
      assert.is_not.equals(200, status)
      assert.is_true(wait_line(out, "b on_stop stopped"), table.concat(lines(out), "\n"))
      os.execute("sleep 0.3")
      local l = lines(out)
      assert.equals(0, count(l, "b tick") + count(l, "b task"), table.concat(l, "\n"))
      assert.equals(1, count(l, "c on_stop stopped"), table.concat(l, "\n")) -- c raised in new(): its hook ran too

      -- a reload that removes a
      proc.write(file, 'prometheus.exporter.self "s" {}\n')
      assert.equals(200, (proc.http("POST", h.base .. "/-/reload")))
      assert.is_true(wait_line(out, "a on_stop stopped"), table.concat(lines(out), "\n"))
      local n = #lines(out)
      os.execute("sleep 0.3")
      assert.equals(n, #lines(out), table.concat(lines(out), "\n"))
    end)
    h.kill()
    assert.equals(0, h.wait(10))
    assert(ok, err)
  end)
end)
