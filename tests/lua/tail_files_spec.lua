-- moonwatch.native.tail: files that cannot be opened at once (max_open_files, an open
-- error, not a regular file) are read from their stored position when they can be, and
-- the positions file reads back whatever paths and labels it holds.
local tail = require("moonwatch.native.tail")
local logs = require("moonwatch.batch.logs")
local proc = require("helpers.proc")
local helpers_logs = require("helpers.logs")

local write, read_all = helpers_logs.append, helpers_logs.tail_read

local function dir(name)
  local d = proc.tmpdir() .. "/" .. name
  os.execute("rm -rf '" .. d .. "' && mkdir -p '" .. d .. "'")
  return d
end

local function target(p, key)
  return { path = p, labels = { filename = p }, key = key or {} }
end

describe("tailer files", function()
  it("read a file that waited for max_open_files from its stored position", function()
    local d = dir("waiting")
    local a, c = target(d .. "/a.log"), target(d .. "/c.log")
    write(a.path, "a1\n")
    write(c.path, "c1\n")
    local b = logs.new()
    local t = assert(tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 1000 }))
    assert(t:set({ a, c }))
    table.sort(read_all(t, b))
    assert(t:save(true))
    t:close()
    write(c.path, "c2\n")
    -- a restart with one file open at most: c waits for a
    t = assert(tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 1000, max_open_files = 1 }))
    assert(t:set({ a, c }))
    assert.same({}, read_all(t, b))
    assert(t:set({ c })) -- a is no target any more: c gets its turn, from where it was
    assert.same({ "c2" }, read_all(t, b))
    t:close()
  end)

  it("read a file with tail_from_end from its end when it waited", function()
    local d = dir("waiting_end")
    local a, c = target(d .. "/a.log"), target(d .. "/c.log")
    write(a.path, "a1\n")
    write(c.path, "c1\n")
    local b = logs.new()
    local t = assert(tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 1000,
      max_open_files = 1, tail_from_end = true }))
    assert(t:set({ a, c }))
    assert.same({}, read_all(t, b))
    assert(t:set({ c }))
    assert.same({}, read_all(t, b))
    write(c.path, "c2\n")
    assert.same({ "c2" }, read_all(t, b))
    t:close()
  end)

  it("try a path that was not a regular file again, and read the file it becomes", function()
    local d = dir("notreg")
    local a = target(d .. "/a.log")
    os.execute("mkdir '" .. a.path .. "'")
    local b = logs.new()
    local t = assert(tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 1000 }))
    assert(t:set({ a }))
    assert.same({}, read_all(t, b))
    assert.equals("error", t:files()[1].state)
    os.execute("rmdir '" .. a.path .. "'")
    write(a.path, "a1\n")
    assert.same({ "a1" }, read_all(t, b))
    assert.equals("active", t:files()[1].state)
    t:close()
  end)

  it("read back a positions file with long labels and a path with a newline", function()
    local d = dir("longpos")
    local long = target(d .. "/long.log", { big = string.rep("x", 20000) })
    local nl = target(d .. "/new\nline.log")
    write(long.path, "l1\n")
    write(nl.path, "n1\n")
    local b = logs.new()
    local t = assert(tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 1000 }))
    assert(t:set({ long, nl }))
    local got = read_all(t, b)
    table.sort(got)
    assert.same({ "l1", "n1" }, got)
    assert(t:save(true))
    t:close()
    write(long.path, "l2\n")
    write(nl.path, "n2\n")
    local err
    t, err = tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 1000 })
    assert.is_nil(err)
    assert(t:set({ long, nl }))
    got = read_all(t, b)
    table.sort(got)
    assert.same({ "l2", "n2" }, got) -- from the positions: nothing read twice
    t:close()
  end)

  it("set tens of thousands of targets in time linear in their number", function()
    local d = dir("many")
    local files = {}
    for i = 1, 30000 do -- missing files: a position each all the same
      local p = string.format("%s/f%06d.log", d, i)
      files[i] = target(p)
    end
    local t = assert(tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 1000 }))
    local t0 = os.clock()
    assert(t:set(files))
    assert(t:set(files)) -- a sync that changes nothing
    local took = os.clock() - t0
    assert.equals(30000, t:stats().files)
    assert.is_true(took < 2, "took " .. took .. " s of CPU") -- a scan per target: about 15 s
    t:close()
  end)

  it("read a file whose size says 0 though it has data (/proc) once", function()
    local d = dir("proc")
    local b = logs.new()
    local t = assert(tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 100000 }))
    assert(t:set({ target("/proc/version") }))
    t:check_all()
    local lines, more = 0, nil
    for _ = 1, 20 do -- each truncation ("size 0 < offset") read it again: forever
      more = t:read(b, 100, 1000000)
      lines = lines + logs.len(b)
      if not more then
        break
      end
    end
    assert.is_false(more)
    -- once: known by its file system (procfs), not by looking truncated twice, which a regular
    -- file truncated by its writer can be too (it must be followed on)
    assert.equals(1, lines)
    for _ = 1, 3 do -- and the next ticks read nothing more
      t:check_all()
      assert.is_false(t:read(b, 100, 1000000))
      assert.equals(0, logs.len(b))
    end
    assert.equals("done", t:files()[1].state)
    t:close()
  end)

  -- A polling tailer of dir name's a.log that has read its first line: the tailer, the
  -- target, the batch it reads into.
  local function tailing_one(name)
    local d = dir(name)
    local a = target(d .. "/a.log")
    local b = logs.new()
    local t = assert(tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 1000 }))
    write(a.path, "first line of a longer file\n")
    assert(t:set({ a }))
    assert.same({ "first line of a longer file" }, read_all(t, b))
    return t, a, b
  end

  it("follow a regular file its writer truncates to 0 again and again, reading each new line once", function()
    local t, a, b = tailing_one("truncated")
    for i = 1, 6 do
      io.open(a.path, "wb"):close() -- truncated to 0: the tailer sees size 0 below its position
      assert.same({}, read_all(t, b))
      write(a.path, "line " .. i .. "\n")
      assert.same({ "line " .. i }, read_all(t, b))
      assert.equals("active", t:files()[1].state)
    end
    t:close()
  end)

  it("read a file truncated and written again (copytruncate) before the next look from its start", function()
    local t, a, b = tailing_one("copytruncate")
    for i = 1, 3 do
      io.open(a.path, "wb"):close() -- truncated, and shorter lines written before the tailer looks:
      write(a.path, "l" .. i .. "\nm" .. i .. "\n") -- its size is not 0, only below the position
      assert.same({ "l" .. i, "m" .. i }, read_all(t, b))
      write(a.path, "n" .. i .. "\n") -- and followed on from there
      assert.same({ "n" .. i }, read_all(t, b))
    end
    assert.equals("active", t:files()[1].state)
    t:close()
  end)

  it("read Alloy's positions file with scalars folded past 80 columns (yaml.v2)", function()
    local d = dir("folded")
    local spaced = d .. "/a dir with spaces/and a long name with spaces too/that goes past eighty columns/x.log"
    os.execute("mkdir -p '" .. d .. "/a dir with spaces/and a long name with spaces too/that goes past eighty columns'")
    local k8s = target(d .. "/pod.log", { container = "container", job = "default/my-app", namespace = "default",
      pod = "my-app-7d9f8b6c5d-abcde", stream = "stdout" })
    local quoted = target(d .. "/q.log",
      { a = "it's", c = "a long value with spaces that goes on and on past the eighty columns" })
    local plain = target(spaced)
    for _, f in ipairs({ k8s, quoted, plain }) do
      write(f.path, "old\n")
    end
    -- as yaml.v2 writes them: a single-quoted, a plain and a double-quoted scalar folded
    local f = assert(io.open(d .. "/positions.yml", "wb"))
    f:write("positions:\n",
      "  ? path: " .. k8s.path .. "\n",
      [[    labels: '{container="container", job="default/my-app", namespace="default", pod="my-app-7d9f8b6c5d-abcde",]], "\n",
      [[      stream="stdout"}']], "\n",
      '  : "4"\n',
      "  ? path: " .. d .. "/a dir with spaces/and a long name with spaces too/that goes past\n",
      "      eighty columns/x.log\n",
      "    labels: '{}'\n",
      '  : "4"\n',
      "  ? path: " .. quoted.path .. "\n",
      [[    labels: "{a=\"it's\", c=\"a long value with spaces that goes on and\]], "\n",
      [[      \ on past the eighty columns\"}"]], "\n",
      '  : "4"\n')
    f:close()
    for _, x in ipairs({ k8s, quoted, plain }) do
      write(x.path, "new\n")
    end
    local b = logs.new()
    local t, err = tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 1000 })
    assert.is_nil(err)
    assert(t:set({ k8s, quoted, plain }))
    assert.same({ "new", "new", "new" }, read_all(t, b)) -- each from its position: "old" not again
    t:close()
  end)

  it("never opens a FIFO (its writer would take us for its reader)", function()
    local d = dir("fifo")
    local fifo = target(d .. "/app.log")
    assert.equals(true, os.execute("mkfifo '" .. fifo.path .. "'") == 0 or nil)
    -- a writer that waits for a reader (its open blocks until one opens the FIFO)
    os.execute("(: > '" .. fifo.path .. "'; echo opened > '" .. d .. "/rc') >/dev/null 2>&1 &")
    os.execute("sleep 0.2") -- it is in its open
    local b = logs.new()
    local t = assert(tail.new({ positions = d .. "/positions.yml", poll = true, max_line_size = 1000 }))
    assert(t:set({ fifo }))
    for _ = 1, 3 do -- each tick tries a path that is not a regular file again
      assert.same({}, read_all(t, b))
    end
    assert.equals("error", t:files()[1].state)
    os.execute("sleep 0.3")
    local rc = io.open(d .. "/rc")
    if rc then
      rc:close()
    end
    os.execute("timeout 2 cat '" .. fifo.path .. "' >/dev/null") -- the writer goes away (if it waits)
    t:close()
    assert.is_nil(rc, "the FIFO's writer got a reader")
  end)
end)
