-- loki.source.file: files that wait for max_open_files are not read; the component says so
-- in its health (it was healthy while they were never read), and is healthy again when
-- they are read.
local proc = require("helpers.proc")

describe("loki.source.file health", function()
  it("is unhealthy while files wait for max_open_files", function()
    local mod = dofile((os.getenv("MOONWATCH_SOURCE_DIR") or ".") .. "/stdlib/loki/source/file.lua")
    local dir = proc.tmpdir()
    local function write(p, s)
      local f = assert(io.open(p, "ab"))
      f:write(s)
      f:close()
    end
    write(dir .. "/a.log", "a\n")
    write(dir .. "/b.log", "b\n")
    local health = {}
    local ctx = {
      id = "loki.source.file.t", storage_path = dir .. "/storage",
      log = { warn = function() end, error = function() end, info = function() end },
      timer = function() return { close = function() end } end,
      set_health = function(_, state, msg)
        health = { state, msg }
      end,
    }
    local args = {
      targets = { { __path__ = dir .. "/a.log" }, { __path__ = dir .. "/b.log" } }, forward_to = {},
      encoding = "", tail_from_end = false, legacy_positions_file = "", decompression = {},
      file_watch = { min_poll_frequency = 0.25, max_poll_frequency = 0.25 },
      file_match = { enabled = false, sync_period = 10, ignore_older_than = 0 },
      max_line_size = 1000, max_open_files = 1,
    }
    local self = mod.new(ctx, args)
    self:save(false)
    assert.same({ "unhealthy", "1 files are not read: they wait for one of the max_open_files (1) to close" }, health)
    args.targets = { { __path__ = dir .. "/b.log" } }
    self:update(args)
    self.tailer:read(self.batch, 100, 100000) -- b opens
    self:save(false)
    assert.same({ "healthy", "" }, health)
    self:stop()
  end)
end)
