-- moonwatch.native.tail: the positions of files that come and go do not pile up (the
-- forgotten ones are dropped), and the files still tailed keep theirs through it.
local tail = require("moonwatch.native.tail")
local logs = require("moonwatch.batch.logs")
local proc = require("helpers.proc")
local helpers_logs = require("helpers.logs")

local write = helpers_logs.append

local slurp = proc.read_file

describe("tailer positions", function()
  it("drop the positions of deleted files and keep those of the files tailed", function()
    local d = proc.tmpdir() .. "/positions"
    os.execute("mkdir -p " .. d)
    local t = assert(tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 1000 }))
    local b = logs.new()
    local function read_all()
      return helpers_logs.tail_read(t, b)
    end
    local keep = { path = d .. "/keep.log", labels = { filename = "keep" }, key = {} }
    write(keep.path, "k1\n")
    for round = 1, 3 do
      local files = { keep }
      for i = 1, 100 do
        local p = string.format("%s/r%d-%03d.log", d, round, i)
        write(p, "x\n")
        files[#files + 1] = { path = p, labels = { filename = p }, key = {} }
      end
      assert(t:set(files))
      assert.equals(round == 1 and 101 or 100, #read_all())
      for i = 2, #files do
        os.remove(files[i].path)
      end
      assert(t:set({ keep }))
      assert(t:save(true))
      assert.equals(1, t:stats().positions) -- the 100 forgotten ones dropped
      write(keep.path, "k" .. round + 1 .. "\n")
      assert.same({ "k" .. round + 1 }, read_all())
      assert(t:save(true))
      local pos = slurp(d .. "/positions.yml")
      assert.equals(d .. "/keep.log", pos:match("path: '([^']+)'"))
      assert.is_nil(pos:find("/r%d"), pos) -- a file r<round>-..., not the tmp dir (tmp.XXXr0...)
      assert.matches(': "' .. 3 * (round + 1) .. '"', pos, 1, true)
    end
    t:close()
  end)
end)

describe("tailer positions (a corrupt entry)", function()
  -- Alloy's on_positions_file_error = "restart_from_beginning" (its default): the file starts
  -- as one without a position (from its end with tail_from_end); loki.source.file refuses the
  -- other values it cannot honour
  it("starts a file whose position entry is corrupt as one without a position", function()
    local d = proc.tmpdir() .. "/corrupt"
    os.execute("mkdir -p " .. d)
    for _, from_end in ipairs({ false, true }) do
      local log = d .. "/app" .. tostring(from_end) .. ".log"
      write(log, "l1\nl2\n")
      local posf = d .. "/positions" .. tostring(from_end) .. ".yml"
      local f = assert(io.open(posf, "w"))
      f:write("positions:\n  ? path: '" .. log .. "'\n    labels: '{}'\n  : \"not-a-number\"\n")
      f:close()
      local t = assert(tail.new({ positions = posf, poll = true, max_line_size = 1000, tail_from_end = from_end }))
      assert(t:set({ { path = log, labels = { filename = log }, key = {} } }))
      local b, got = logs.new(), {}
      t:check_all()
      repeat
        local more = t:read(b, 1000, 1000000)
        for _, e in logs.entries(b) do
          got[#got + 1] = e.line
        end
      until not more
      assert.same(from_end and {} or { "l1", "l2" }, got)
      t:close()
    end
  end)

  it("loki.source.file takes on_positions_file_error as far as it can honour it, and refuses the rest", function()
    local schema = require("moonwatch.schema")
    local mod = dofile((os.getenv("MOONWATCH_SOURCE_DIR") or ".") .. "/stdlib/loki/source/file.lua")
    local function problem(args)
      args.targets, args.forward_to = {}, {}
      local _, p = schema.validate({ args = mod.args, validate = mod.validate }, args)
      return p[1] and p[1].msg or nil
    end
    assert.is_nil(problem({}))
    assert.is_nil(problem({ on_positions_file_error = "restart_from_beginning" }))
    assert.is_nil(problem({ on_positions_file_error = "restart_from_end", tail_from_end = true }))
    assert.matches('"restart_from_end" is supported by moonwatch with tail_from_end = true only',
      problem({ on_positions_file_error = "restart_from_end" }), 1, true)
    assert.matches('"skip" is not supported by moonwatch', problem({ on_positions_file_error = "skip" }), 1, true)
    assert.matches("must be one of", problem({ on_positions_file_error = "restart" }), 1, true)
  end)
end)
