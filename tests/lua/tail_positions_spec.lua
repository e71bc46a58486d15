-- moonwatch.native.tail: the positions of files that come and go do not pile up (the
-- forgotten ones are dropped), and the files still tailed keep theirs through it.
local tail = require("moonwatch.native.tail")
local logs = require("moonwatch.batch.logs")
local proc = require("helpers.proc")

local function write(path, s)
  local f = assert(io.open(path, "ab"))
  f:write(s)
  f:close()
end

local slurp = proc.read_file

describe("tailer positions", function()
  it("drop the positions of deleted files and keep those of the files tailed", function()
    local d = proc.tmpdir() .. "/positions"
    os.execute("mkdir -p " .. d)
    local t = assert(tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 1000 }))
    local b = logs.new()
    local function read_all()
      local got = {}
      t:check_all()
      repeat
        local more = t:read(b, 1000, 1000000)
        for _, e in logs.entries(b) do
          got[#got + 1] = e.line
        end
      until not more
      return got
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
