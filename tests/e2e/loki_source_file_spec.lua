-- End-to-end: local_.file_match -> loki.source.file -> loki.echo (a file) through
-- `moonwatch run`: every line once and in order with filename and the target's labels,
-- appends, files that appear later, rotation (rename, copytruncate), truncation, deletion,
-- restarts (SIGTERM: nothing repeated; kill -9: nothing lost), tail_from_end, polling,
-- compressed files, encodings, over-long lines, and bad configuration.
local proc = require("helpers.proc")

local tmp = proc.tmpdir()
local n = 0
local started = {} -- every moonwatch started, ended after each test even when it fails

local slurp = proc.read_file

local function append(path, s)
  local f = assert(io.open(path, "ab"))
  f:write(s)
  f:close()
end

local function unescape(s)
  return (s:gsub("\\(x%x%x)", function(h)
    return string.char(tonumber(h:sub(2), 16))
  end):gsub("\\(.)", { n = "\n", t = "\t", ['"'] = '"', ["\\"] = "\\" }))
end

-- The entries loki.echo wrote: { file = filename label, line = ..., labels = text }.
local function entries(out)
  local list = {}
  for l in slurp(out):gmatch("[^\n]+") do
    local labels, line = l:match('labels="(.-)" entry="(.*)"$')
    local file = labels and labels:match('filename=\\"(.-)\\"')
    list[#list + 1] = { file = file, line = unescape(line or ""), labels = labels }
  end
  return list
end

-- The lines read from one file (by its basename), in order.
local function lines_of(out, base)
  local r = {}
  for _, e in ipairs(entries(out)) do
    if e.file and e.file:match("[^/]+$") == base then
      r[#r + 1] = e.line
    end
  end
  return r
end

local wait_for = proc.wait_for

-- A pipeline around loki.source.file: dir of logs, the source's extra arguments.
local function setup(source_args, opts)
  n = n + 1
  local dir = string.format("%s/t%d", tmp, n)
  os.execute("mkdir -p " .. dir .. "/logs")
  local out = dir .. "/out.log"
  local f = proc.write(dir .. "/pipeline.lua", string.format([[
local_.file_match "f" {
  path_targets = { { __path__ = %q, __path_exclude__ = "**/*.skip.log", job = "app" } },
  sync_period = "100ms",
}
loki.source.file "s" {
  targets = local_.file_match.f.targets,
  forward_to = { loki.echo.e.receiver },
  %s
}
loki.echo "e" { file = %q }
]], (opts and opts.glob) or (dir .. "/logs/**/*.log"), source_args or "", out))
  local t = { dir = dir, logs = dir .. "/logs", out = out, pipeline = f, data = dir .. "/data" }
  function t.start(env)
    t.h = proc.start_run(f, { "--storage.path=" .. t.data }, { env = env or (opts and opts.env) })
    started[#started + 1] = t.h
    return t.h
  end
  function t.wait_lines(base, count, timeout)
    return wait_for(function()
      return #lines_of(out, base) >= count
    end, timeout)
  end
  return t
end

local function seq(prefix, from, to)
  local r = {}
  for i = from, to do
    r[#r + 1] = string.format("%s%05d", prefix, i)
  end
  return r
end

local function text(lines, eol)
  return table.concat(lines, eol or "\n") .. (eol or "\n")
end

describe("loki.source.file", function()
  after_each(function()
    for _, h in ipairs(started) do
      if not h.wait(0) then -- still running (its pid is still its own)
        h.kill("KILL")
        h.wait(10)
      end
    end
    started = {}
  end)

  for _, mode in ipairs({ "inotify", "poll" }) do
    -- inotify: events only (no periodic check that would hide a missed event)
    local env = "MOONWATCH_FILE_WATCH=" .. mode

    it("reads every line once, in order, with filename and the target's labels (" .. mode .. ")", function()
      local t = setup(nil, { env = env })
      append(t.logs .. "/a.log", text(seq("a", 1, 3000)))
      os.execute("mkdir -p " .. t.logs .. "/sub")
      append(t.logs .. "/sub/b.log", text({ "b1", "b2 with \r inside", "" , "b4" }, "\r\n"))
      append(t.logs .. "/x.skip.log", "never\n")
      local h = t.start()
      assert.is_true(t.wait_lines("a.log", 3000), "only " .. #lines_of(t.out, "a.log"))
      append(t.logs .. "/a.log", text(seq("a", 3001, 3010)))
      append(t.logs .. "/a.log", "a03011 without its newline yet")
      append(t.logs .. "/c.log", "c1\n") -- a file that appears later
      assert.is_true(t.wait_lines("a.log", 3010))
      assert.is_true(t.wait_lines("c.log", 1))
      append(t.logs .. "/a.log", " - now\n")
      assert.is_true(t.wait_lines("a.log", 3011))
      h.kill()
      assert.equals(0, h.wait(10))
      local want = seq("a", 1, 3010)
      want[#want + 1] = "a03011 without its newline yet - now"
      assert.same(want, lines_of(t.out, "a.log"))
      assert.same({ "b1", "b2 with \r inside", "", "b4" }, lines_of(t.out, "b.log"))
      assert.same({ "c1" }, lines_of(t.out, "c.log"))
      assert.same({}, lines_of(t.out, "x.skip.log"))
      for _, e in ipairs(entries(t.out)) do
        assert.equals(string.format('{filename=\\"%s\\", job=\\"app\\"}', e.file), e.labels)
      end
    end)

    it("follows rotation by rename and by copytruncate, and truncation (" .. mode .. ")", function()
      local t = setup(nil, { env = env })
      local r, c, tr = t.logs .. "/r.log", t.logs .. "/c.log", t.logs .. "/t.log"
      append(r, text(seq("r", 1, 5)))
      append(c, text(seq("c", 1, 5)))
      append(tr, text(seq("t", 1, 5)))
      local h = t.start()
      assert.is_true(t.wait_lines("r.log", 5) and t.wait_lines("c.log", 5) and t.wait_lines("t.log", 5))
      -- rename: the old file gets its last lines, then the new file is read from its start
      append(r, text(seq("r", 6, 7)))
      os.rename(r, t.logs .. "/r.log.1")
      append(r, text(seq("r", 8, 9)))
      -- copytruncate
      os.execute(string.format("cp %s %s.1 && : > %s", c, c, c))
      append(c, text(seq("c", 6, 7)))
      -- truncation
      os.execute(": > " .. tr)
      append(tr, text(seq("t", 6, 6)))
      assert.is_true(t.wait_lines("r.log", 9), table.concat(lines_of(t.out, "r.log"), ","))
      assert.is_true(t.wait_lines("c.log", 7), table.concat(lines_of(t.out, "c.log"), ","))
      assert.is_true(t.wait_lines("t.log", 6), table.concat(lines_of(t.out, "t.log"), ","))
      os.execute("sleep 0.5")
      h.kill()
      assert.equals(0, h.wait(10))
      assert.same(seq("r", 1, 9), lines_of(t.out, "r.log"))
      assert.same(seq("c", 1, 7), lines_of(t.out, "c.log"))
      assert.same(seq("t", 1, 6), lines_of(t.out, "t.log"))
    end)
  end

  it("stops tailing a deleted file, forgets its position, and reads it again when it comes back", function()
    local t = setup()
    local d = t.logs .. "/d.log"
    append(d, text(seq("d", 1, 3)))
    local h = t.start()
    assert.is_true(t.wait_lines("d.log", 3))
    local pos = t.data .. "/loki.source.file.s/positions.yml"
    assert.is_true(wait_for(function()
      return slurp(pos):find("d.log", 1, true) ~= nil
    end))
    os.remove(d)
    assert.is_true(wait_for(function()
      return slurp(pos):find("d.log", 1, true) == nil
    end), slurp(pos))
    append(d, text(seq("d", 4, 5)))
    assert.is_true(t.wait_lines("d.log", 5))
    h.kill()
    assert.equals(0, h.wait(10))
    assert.same(seq("d", 1, 5), lines_of(t.out, "d.log"))
  end)

  it("keeps positions: a SIGTERM restart repeats nothing, a kill -9 restart loses nothing", function()
    local t = setup()
    local a = t.logs .. "/a.log"
    append(a, text(seq("a", 1, 20000)))
    local h = t.start()
    assert.is_true(t.wait_lines("a.log", 20000))
    h.kill("TERM")
    assert.equals(0, h.wait(10))
    local pos = slurp(t.data .. "/loki.source.file.s/positions.yml")
    assert.matches("? path: '" .. a .. "'\n    labels: '{job=\"app\"}'\n  : \"" .. 20000 * 7 .. "\"", pos, 1, true)
    append(a, text(seq("a", 20001, 30000)))
    h = t.start()
    assert.is_true(t.wait_lines("a.log", 30000))
    assert.same(seq("a", 1, 30000), lines_of(t.out, "a.log")) -- none repeated
    -- kill -9 while lines are being read: those since the last save (<= 1 s) come again
    append(a, text(seq("a", 30001, 230000)))
    os.execute("sleep 0.2")
    h.kill("KILL")
    h.wait(10)
    h = t.start()
    assert.is_true(t.wait_lines("a.log", 230000, 30), "only " .. #lines_of(t.out, "a.log"))
    h.kill("TERM")
    assert.equals(0, h.wait(10))
    local got, seen, dups = lines_of(t.out, "a.log"), {}, 0
    for _, l in ipairs(got) do
      if seen[l] then
        dups = dups + 1
      end
      seen[l] = true
    end
    for _, l in ipairs(seq("a", 1, 230000)) do
      assert(seen[l], "lost " .. l)
    end
    assert.is_true(dups <= 200000, "duplicates: " .. dups)
    assert.equals(230000 + dups, #got)
  end)

  it("tails from the end with tail_from_end when a file has no position", function()
    local t = setup("tail_from_end = true,")
    append(t.logs .. "/old.log", text(seq("old", 1, 100)))
    local h = t.start()
    assert.is_true(wait_for(function()
      return slurp(t.data .. "/loki.source.file.s/positions.yml"):find("old.log", 1, true) ~= nil
    end))
    append(t.logs .. "/old.log", "new1\n")
    assert.is_true(t.wait_lines("old.log", 1))
    os.execute("sleep 0.3")
    h.kill()
    assert.equals(0, h.wait(10))
    assert.same({ "new1" }, lines_of(t.out, "old.log"))
  end)

  it("reads gzip and bzip2 files whole (decompression)", function()
    for _, c in ipairs({ { "gz", "gzip" }, { "bz2", "bzip2" } }) do
      local t = setup(string.format('decompression = { enabled = true, format = %q },', c[1]),
        { glob = tmp .. "/t" .. (n + 1) .. "/logs/*." .. c[1] })
      local plain = t.logs .. "/z.log"
      append(plain, text(seq("z", 1, 50000)))
      os.execute(string.format("%s %s", c[2], plain))
      local h = t.start()
      assert.is_true(t.wait_lines("z.log." .. c[1], 50000), c[1])
      h.kill()
      assert.equals(0, h.wait(10))
      assert.same(seq("z", 1, 50000), lines_of(t.out, "z.log." .. c[1]))
      -- restarted: nothing read again
      h = t.start()
      os.execute("sleep 0.5")
      h.kill()
      assert.equals(0, h.wait(10))
      assert.equals(50000, #lines_of(t.out, "z.log." .. c[1]))
    end
  end)

  it("converts encodings (UTF-16LE with \\r\\n, ISO-8859-1) to UTF-8", function()
    local t = setup('encoding = "UTF-16LE",', { glob = tmp .. "/t" .. (n + 1) .. "/logs/*.u16" })
    -- "héllo\r\nwörld\r\n", each code point below U+0100 as two bytes, low first
    local u16 = ""
    for _, cp in ipairs({ 104, 233, 108, 108, 111, 13, 10, 119, 246, 114, 108, 100, 13, 10 }) do
      u16 = u16 .. string.char(cp, 0)
    end
    append(t.logs .. "/x.u16", u16)
    local h = t.start()
    assert.is_true(t.wait_lines("x.u16", 2))
    h.kill()
    assert.equals(0, h.wait(10))
    assert.same({ "h\195\169llo", "w\195\182rld" }, lines_of(t.out, "x.u16"))

    t = setup('encoding = "ISO-8859-1",', { glob = tmp .. "/t" .. (n + 1) .. "/logs/*.latin1" })
    append(t.logs .. "/y.latin1", "caf\233\n")
    h = t.start()
    assert.is_true(t.wait_lines("y.latin1", 1))
    h.kill()
    assert.equals(0, h.wait(10))
    assert.same({ "caf\195\169" }, lines_of(t.out, "y.latin1"))
  end)

  it("cuts a line over max_line_size and counts it", function()
    local t = setup("max_line_size = 10,")
    append(t.logs .. "/l.log", "short\n" .. string.rep("x", 25) .. "\nafter\n")
    local h = t.start()
    assert.is_true(t.wait_lines("l.log", 3))
    local body = ""
    wait_for(function() -- the metrics are refreshed every second
      local _
      _, body = proc.http("GET", h.base .. "/metrics")
      return body:find("loki_source_file_lines_truncated_total", 1, true) ~= nil
    end)
    h.kill()
    assert.equals(0, h.wait(10))
    assert.same({ "short", string.rep("x", 10), "after" }, lines_of(t.out, "l.log"))
    assert.matches('loki_source_file_lines_truncated_total{component_id="loki.source.file.s"} 1', body, 1, true)
    assert.matches('loki_source_file_read_lines_total{component_id="loki.source.file.s",path="'
      .. t.logs .. '/l.log"} 3', body, 1, true)
  end)

  it("takes static targets, promtail's positions, its own file_match block; shows files in its debug info", function()
    n = n + 1
    local dir = string.format("%s/t%d", tmp, n)
    os.execute("mkdir -p " .. dir .. "/m " .. dir .. "/dir.log")
    append(dir .. "/s.log", "skip1\nread1\n")
    append(dir .. "/m/x.log", "x1\n")
    proc.write(dir .. "/legacy.yml", string.format('positions:\n  %s: "6"\n', dir .. "/s.log"))
    local out = dir .. "/out.log"
    local f = proc.write(dir .. "/pipeline.lua", string.format([[
loki.source.file "s" {
  targets = { { __path__ = %q, job = "static" }, { __path__ = %q, job = "static" } },
  legacy_positions_file = %q,
  forward_to = { loki.echo.e.receiver },
}
loki.source.file "m" {
  targets = { { __path__ = %q, job = "matched" } },
  file_match = { enabled = true, sync_period = "100ms" },
  forward_to = { loki.echo.e.receiver },
}
loki.echo "e" { file = %q }
]], dir .. "/s.log", dir .. "/dir.log", dir .. "/legacy.yml", dir .. "/m/*.log", out))
    local h = proc.start_run(f, { "--storage.path=" .. dir .. "/data" }, { env = "MOONWATCH_FILE_WATCH=inotify" })
    started[#started + 1] = h
    -- a target that is not a regular file is said in the log, naming it
    assert.is_true(h.wait_log(string.format('level=warn component_id=loki.source.file.s msg="cannot read file" '
      .. 'err="not a regular file" path=%s/dir.log', dir), 5), h.read())
    assert.is_true(wait_for(function()
      return #lines_of(out, "s.log") >= 1 and #lines_of(out, "x.log") >= 1
    end))
    append(dir .. "/m/y.log", "y1\n")
    assert.is_true(wait_for(function()
      return #lines_of(out, "y.log") >= 1
    end))
    local _, body = proc.http("GET", h.base .. "/api/v0/components/loki.source.file.s")
    assert.matches('"path":"' .. dir .. '/s.log"', body:gsub("\\/", "/"), 1, true)
    assert.matches('"read_offset":12', body, 1, true)
    -- a deleted file's position is forgotten (the target stays)
    local pos = dir .. "/data/loki.source.file.s/positions.yml"
    assert.is_true(wait_for(function() -- saved within a second
      return slurp(pos):find("s.log", 1, true) ~= nil
    end))
    os.remove(dir .. "/s.log")
    assert.is_true(wait_for(function()
      return slurp(pos):find("s.log", 1, true) == nil
    end), slurp(pos))
    h.kill()
    assert.equals(0, h.wait(10))
    assert.same({ "read1" }, lines_of(out, "s.log"))
    assert.same({ "x1" }, lines_of(out, "x.log"))
    assert.same({ "y1" }, lines_of(out, "y.log"))
    for _, e in ipairs(entries(out)) do
      assert.matches(e.file:find("/m/", 1, true) and 'job=\\"matched\\"' or 'job=\\"static\\"', e.labels)
    end
  end)

  it("makes a relative glob's files absolute (under the working directory), as Alloy; a plain relative __path__ stays", function()
    -- Alloy: local.file_match and loki.source.file's file_match glob relative to the working
    -- directory and set filepath.Abs of each match; a plain __path__ is opened as it is
    n = n + 1
    local dir = string.format("%s/t%d", tmp, n)
    os.execute("mkdir -p " .. dir .. "/rel/sub")
    local real = proc.sh("cd " .. proc.quote(dir) .. " && pwd -P"):gsub("\n$", "")
    append(dir .. "/rel/a.log", "a1\n")
    append(dir .. "/rel/sub/b.log", "b1\n")
    append(dir .. "/rel/c.log", "c1\n")
    local out = dir .. "/out.log"
    local f = proc.write(dir .. "/pipeline.lua", string.format([[
local_.file_match "f" {
  path_targets = { { __path__ = "rel/*.log", __path_exclude__ = "rel/c.log" } },
  sync_period = "100ms",
}
loki.source.file "s" {
  targets = local_.file_match.f.targets,
  forward_to = { loki.echo.e.receiver },
}
loki.source.file "m" {
  targets = { { __path__ = "./rel/../rel/sub/*.log" } },
  file_match = { enabled = true, sync_period = "100ms" },
  forward_to = { loki.echo.e.receiver },
}
loki.source.file "p" {
  targets = { { __path__ = "rel/c.log" } },
  forward_to = { loki.echo.e.receiver },
}
loki.echo "e" { file = %q }
]], out))
    local h = proc.start_run(f, { "--storage.path=" .. dir .. "/data" }, { cwd = dir })
    started[#started + 1] = h
    assert.is_true(wait_for(function()
      return #entries(out) >= 3
    end), slurp(out))
    local files = {}
    for _, e in ipairs(entries(out)) do
      files[#files + 1] = e.file
    end
    table.sort(files)
    assert.same({ real .. "/rel/a.log", real .. "/rel/sub/b.log", "rel/c.log" }, files)
    local c = proc.component(h, "local.file_match.f")
    assert.same({ { __path__ = real .. "/rel/a.log" } }, c.exports.targets)
    h.kill()
    assert.equals(0, h.wait(10))
  end)

  it("refuses a malformed glob or an unknown encoding with the declaration's line", function()
    local f = proc.write(tmp .. "/bad.lua", [[
local_.file_match "f" { path_targets = { { __path__ = "/var/log/[a.log" } } }
loki.source.file "s" { targets = local_.file_match.f.targets, forward_to = {}, encoding = "NOPE-42" }
]])
    local code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches('bad.lua:1: local.file_match "f": path_targets[1]: __path__ "/var/log/[a.log": unclosed [', err, 1, true)
    assert.matches('bad.lua:2: loki.source.file "s": encoding: unknown encoding NOPE-42', err, 1, true)
  end)
end)
