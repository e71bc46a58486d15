-- moonwatch.fs: mkdir -p and find(1) in C, so that no component shells out.
local fs = require("moonwatch.fs")

describe("moonwatch.fs", function()
  local tmp
  before_each(function()
    tmp = os.tmpname()
    os.remove(tmp)
    assert.is_true(fs.mkdir_p(tmp))
  end)
  after_each(function()
    os.execute("rm -rf '" .. tmp .. "'") -- test clean-up only
  end)

  it("creates missing parents, accepts an existing directory and names what it cannot make", function()
    local deep = tmp .. "/a b/it's/$(x)//c/"
    assert.is_true(fs.mkdir_p(deep))
    assert.is_true(fs.mkdir_p(deep)) -- again: already there
    local f = assert(io.open(deep .. "/f", "w"))
    f:close()
    local ok, err = fs.mkdir_p(deep .. "/f/sub")
    assert.is_nil(ok)
    assert.equals(tmp .. "/a b/it's/$(x)//c//f: not a directory", err)
    ok, err = fs.mkdir_p("")
    assert.is_nil(ok)
    assert.equals("empty directory path", err)
  end)

  it("finds files by suffix at any depth, sorted, relative to the directory", function()
    for _, p in ipairs({ "x.lua", "b/y.lua", "b/c/z.lua", "b/notes.txt", "a\nb.lua" }) do
      local dir = (tmp .. "/" .. p):match("^(.*)/[^/]*$")
      assert.is_true(fs.mkdir_p(dir))
      local f = assert(io.open(tmp .. "/" .. p, "w"))
      f:close()
    end
    assert.same({ "a\nb.lua", "b/c/z.lua", "b/y.lua", "x.lua" }, fs.find(tmp, ".lua"))
    assert.same({}, fs.find(tmp .. "/b/c", ".txt"))
    local paths, err = fs.find(tmp .. "/missing", ".lua")
    assert.is_nil(paths)
    assert.matches("missing: No such file or directory", err, 1, true)
  end)

  it("makes a path absolute and clean, as Go's filepath.Abs", function()
    assert.equals("/w/a/b.log", fs.abs("a/b.log", "/w"))
    assert.equals("/w/b.log", fs.abs("./a/../b.log", "/w"))
    assert.equals("/b.log", fs.abs("../../../b.log", "/w"))
    assert.equals("/var/log/x", fs.abs("/var//log/./y/../x", "/w"))
    assert.equals("/", fs.abs("/", "/w"))
    assert.equals("/x", fs.abs("x", "/"))
    local cwd = assert(fs.getcwd())
    assert.equals("/", cwd:sub(1, 1))
    assert.equals(fs.abs(cwd .. "/x"), fs.abs("x"))
  end)
end)
