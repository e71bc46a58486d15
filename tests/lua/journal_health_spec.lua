-- loki.source.journal: a read error makes the component unhealthy, and the next good read
-- makes it healthy again (it stayed unhealthy while it read on).
local proc = require("helpers.proc")

describe("loki.source.journal health", function()
  it("is healthy again after a read error passes", function()
    local mod = dofile((os.getenv("MOONWATCH_SOURCE_DIR") or ".") .. "/stdlib/loki/source/journal.lua")
    local dir = proc.tmpdir()
    local health = {}
    local log = { warn = function() end, error = function() end, info = function() end }
    local ctx = {
      id = "loki.source.journal.t", storage_path = dir .. "/storage", log = log,
      timer = function() return { close = function() end } end,
      on_stop = function() end,
      spawn = function() end, -- the test runs the reading loop itself
      sleep = function() end,
      set_health = function(_, state, msg)
        health[#health + 1] = { state, msg }
      end,
    }
    local self = mod.new(ctx, { path = dir, matches = "", labels = {}, relabel_rules = {}, max_age = 3600,
      format_as_json = false, forward_to = {} })
    assert.equals("healthy", health[#health][1])
    local calls = 0
    local r = { h = true }
    function r.read()
      calls = calls + 1
      if calls == 1 then
        return nil, "reading the journal: Bad message"
      end
      return 0, true, { lines = 0, no_message = 0, empty_labels = 0 }
    end
    function r.wait()
      r.h = nil -- ends the loop
    end
    function r.cursor() end
    self.reader:close()
    self:tail(r)
    assert.equals(2, calls)
    assert.equals("unhealthy", health[#health - 1][1])
    assert.equals("healthy", health[#health][1], health[#health][2])
  end)
end)

describe("loki.source.journal legacy_position", function()
  local mod = dofile((os.getenv("MOONWATCH_SOURCE_DIR") or ".") .. "/stdlib/loki/source/journal.lua")
  local function start(dir, legacy)
    local log = { warn = function() end, error = function() end, info = function() end }
    local ctx = {
      id = "loki.source.journal.t", storage_path = dir .. "/storage", log = log,
      timer = function() return { close = function() end } end,
      on_stop = function() end, spawn = function() end, sleep = function() end, set_health = function() end,
    }
    local self = mod.new(ctx, { path = dir, matches = "", labels = {}, relabel_rules = {}, max_age = 3600,
      format_as_json = false, forward_to = {}, legacy_position = legacy })
    self.reader:close()
    return self
  end

  it("takes the job's cursor of a legacy positions file when there is no positions file yet, as Alloy", function()
    local dir = proc.tmpdir()
    local legacy = proc.write(dir .. "/legacy.yml",
      'positions:\n  /var/log/x.log: "120"\n  cursor-other: "s=0;i=1"\n  cursor-journal: "s=abc;i=2f;b=def"\n')
    local self = start(dir, { file = legacy, name = "journal" })
    assert.equals("s=abc;i=2f;b=def", self.cursor)
    assert.matches("? path: cursor-loki.source.journal.t", proc.read_file(dir .. "/storage/positions.yml"), 1, true)
    -- a positions file of its own wins
    proc.write(legacy, 'positions:\n  cursor-journal: "s=new"\n')
    assert.equals("s=abc;i=2f;b=def", start(dir, { file = legacy, name = "journal" }).cursor)
    -- a missing legacy file, or one without the job: no cursor
    local dir2 = proc.tmpdir()
    assert.is_nil(start(dir2, { file = dir2 .. "/none.yml", name = "journal" }).cursor)
    assert.is_nil(start(dir2, { file = legacy, name = "nope" }).cursor)
  end)

  it("refuses to start when the legacy positions file exists but cannot be read", function()
    local dir = proc.tmpdir()
    local ok, err = pcall(start, dir, { file = dir, name = "journal" }) -- a directory: EISDIR on read
    assert.is_false(ok)
    assert.matches("could not be read", err, 1, true)
  end)
end)
