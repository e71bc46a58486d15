-- moonwatch.native.tail's doublestar globs (local.file_match): the syntax of Go's
-- bmatcuk/doublestar that Alloy uses, matching and walking real directories.
local tail = require("moonwatch.native.tail")
local proc = require("helpers.proc")

describe("doublestar globs", function()
  it("match as doublestar does", function()
    local cases = {
      { "/var/log/*.log", "/var/log/a.log", true },
      { "/var/log/*.log", "/var/log/sub/a.log", false },
      { "/var/log/**/*.log", "/var/log/a.log", true },
      { "/var/log/**/*.log", "/var/log/x/y/a.log", true },
      { "/var/log/**", "/var/log/x/y", true },
      { "/var/**/log/*.log", "/var/log/a.log", true },
      { "/var/log/?.log", "/var/log/a.log", true },
      { "/var/log/?.log", "/var/log/ab.log", false },
      { "/var/log/[a-c].log", "/var/log/b.log", true },
      { "/var/log/[!a-c].log", "/var/log/b.log", false },
      { "/var/log/[^a-c].log", "/var/log/d.log", true },
      { "/var/log/{app,db}/*.log", "/var/log/db/x.log", true },
      { "/var/log/{app,db}/*.log", "/var/log/web/x.log", false },
      { "/var/log/{a,b{c,d}}.log", "/var/log/bd.log", true },
      { "/var/log/\\*.log", "/var/log/*.log", true },
      { "/var/log/\\*.log", "/var/log/a.log", false },
      { "/var/log/*", "/var/log/.hidden", true },
      { "/var/log/*.log", "/var/log/é.log", true },
      { "/var/log/?.log", "/var/log/é.log", true },
    }
    for _, c in ipairs(cases) do
      assert.equals(c[3], tail.match(c[1], c[2]), c[1] .. " ~ " .. c[2])
    end
    local ok, err = tail.match("/x/{a,b", "/x/a")
    assert.is_nil(ok)
    assert.matches("unclosed {", err, 1, true)
    ok, err = tail.match("/x/[ab", "/x/a")
    assert.is_nil(ok)
    assert.matches("unclosed [", err, 1, true)
  end)

  it("walk directories for regular files, sorted, without the excluded ones", function()
    local d = proc.tmpdir() .. "/glob"
    os.execute(string.format("mkdir -p %s/a/b %s/c && touch %s/x.log %s/a/y.log %s/a/b/z.log %s/a/b/z.txt %s/c/skip.log",
      d, d, d, d, d, d, d))
    os.execute(string.format("mkdir -p %s/dir.log", d)) -- a directory is never a target
    assert.same({ d .. "/a/b/z.log", d .. "/a/y.log", d .. "/c/skip.log", d .. "/x.log" }, tail.glob(d .. "/**/*.log"))
    assert.same({ d .. "/a/b/z.log", d .. "/a/y.log", d .. "/x.log" }, tail.glob(d .. "/**/*.log", "**/c/*"))
    assert.same({ d .. "/a/y.log" }, tail.glob(d .. "/*/*.log", d .. "/c/*"))
    assert.same({ d .. "/a/b/z.log", d .. "/a/b/z.txt" }, tail.glob(d .. "/a/b/z.{log,txt}"))
    assert.same({ d .. "/x.log" }, tail.glob(d .. "/x.log"))
    assert.same({}, tail.glob(d .. "/nope/*.log"))
    assert.same({}, tail.glob(d .. "/**/*.log", nil, os.time() + 3600)) -- all older than min_mtime
  end)

  it("match many stars against a long name in time linear in the name (no backtracking blow-up)", function()
    -- each * used to try every split of the rest: C(60, 9) tries here
    local pat = "/x/" .. string.rep("*a", 9) .. "*b"
    local name = "/x/" .. string.rep("a", 60)
    local t0 = os.clock()
    assert.is_false(tail.match(pat, name))
    assert.is_true(tail.match(pat, name .. "b"))
    assert.is_true(tail.match("/x/**/" .. string.rep("*a", 9) .. "*b", "/x/y/z/" .. string.rep("a", 60) .. "b"))
    assert.is_false(tail.match("/x/**/" .. string.rep("*a", 9) .. "*b", "/x/y/z/" .. string.rep("a", 60)))
    assert.is_true(os.clock() - t0 < 0.5, "took " .. (os.clock() - t0) .. " s")
    -- a star still does not cross a /, and the rest of the pattern still has to match
    assert.is_false(tail.match("/x/*a*b", "/x/a/b"))
    assert.is_true(tail.match("/x/*a*b/*.log", "/x/aab/c.log"))
    assert.is_false(tail.match("/x/*a*b/*.log", "/x/aab/c.txt"))
    assert.is_true(tail.match("/x/*[0-9]?.log", "/x/ab12.log"))
    assert.is_true(tail.match("/x/a*", "/x/a"))
    assert.is_false(tail.match("/x/a*c", "/x/abcd"))
  end)
end)
