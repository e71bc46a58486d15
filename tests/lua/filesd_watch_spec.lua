-- moonwatch.native.filesd's directory watches (discovery.file's inotify): a changed file in a
-- watched directory is reported on the loop, and a directory that was removed and made again
-- is watched again when it is added again (discovery.file adds its directories at each refresh).
local filesd = require("moonwatch.native.filesd")
local loop = require("helpers.loop")
local proc = require("helpers.proc")

local tmp = proc.tmpdir()

describe("moonwatch.native.filesd watch", function()
  local w
  after_each(function()
    if w then
      w:close()
      w = nil
    end
  end)

  local function watcher()
    local seen = {}
    local err
    w, err = filesd.watch(function(paths)
      for _, p in ipairs(paths) do
        seen[p] = true
      end
    end)
    assert.is_truthy(w, err)
    return seen
  end

  it("reports a file written in a watched directory", function()
    local dir = tmp .. "/w1"
    os.execute("mkdir -p " .. dir)
    local seen = watcher()
    assert.is_true(w:add(dir))
    proc.write(dir .. "/a.json", "[]")
    assert.is_truthy(loop.run_until(function()
      return seen[dir .. "/a.json"]
    end, 5), "no event for a.json")
  end)

  it("watches a directory again after it was removed and made again", function()
    local dir = tmp .. "/w2"
    os.execute("mkdir -p " .. dir)
    local seen = watcher()
    assert.is_true(w:add(dir))
    os.execute("rm -rf " .. dir)
    assert.is_truthy(loop.run_until(function()
      return seen[dir]
    end, 5), "no event for the removed directory")
    os.execute("mkdir -p " .. dir)
    assert.is_true(w:add(dir)) -- as discovery.file's next refresh does
    proc.write(dir .. "/b.json", "[]")
    assert.is_truthy(loop.run_until(function()
      return seen[dir .. "/b.json"]
    end, 2), "no event for a file of the directory made again: it is no longer watched")
  end)
end)
