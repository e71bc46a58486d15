-- Alloy's configuration syntax: the edge cases of Alloy's syntax documentation (blocks
-- with and without labels, attributes, nested and repeated blocks, lists, objects,
-- strings with Go's escapes, raw strings, numbers, bools, null, comments, references,
-- operators and their precedence, indexing, field access, the standard library), and
-- errors as file:line:col. The fuzz corpus (tests/fuzz/corpus/alloy/) is replayed here too:
-- every input parses or fails with a positioned message, never raises.
local parser = require("moonwatch.alloy.parser")
local loader = require("moonwatch.alloy.loader")
local convert = require("moonwatch.alloy.convert")
local proc = require("helpers.proc")

local SRC = os.getenv("MOONWATCH_SOURCE_DIR") or "."

local function parse(src)
  local body, err = parser.parse(src, "t.alloy")
  return body, err
end

-- The value of `x = EXPR` evaluated (no references).
local function value(expr)
  local body, err = parse("x = " .. expr .. "\n")
  assert(body, err)
  return loader.eval(body[1].value, { file = "t.alloy", ctx = {}, constants = require("moonwatch.pipeline")
    .constants() })
end

local function eval_err(expr)
  local body, err = parse("x = " .. expr .. "\n")
  assert(body, err)
  local ok, e = pcall(loader.eval, body[1].value, { file = "t.alloy", ctx = {}, constants = {} })
  assert.is_false(ok)
  return e
end

describe("Alloy syntax", function()
  it("parses blocks with and without labels, attributes, nested and repeated blocks", function()
    local body = assert(parse([[
logging {
  level = "debug"
}
prometheus.remote_write "a_b" {
  endpoint { url = "http://x" }
  endpoint {
    url = "http://y"
    basic_auth {
      username = "u"
    }
  }
}
]]))
    assert.equals(2, #body)
    assert.same({ "block", "logging", nil, 1, 1 }, { body[1].kind, body[1].name, body[1].label, body[1].line,
      body[1].col })
    assert.equals("prometheus.remote_write", body[2].name)
    assert.equals("a_b", body[2].label)
    assert.equals(2, #body[2].body)
    assert.equals("basic_auth", body[2].body[2].body[2].name)
    assert.equals(8, body[2].body[2].body[2].line)
  end)

  it("reads literals: strings with Go's escapes, raw strings, numbers, bools, null", function()
    assert.equals("a\"b\\c\n\t", value([["a\"b\\c\n\t"]]))
    assert.equals("é€😀", value([["\u00e9\u20ac\U0001F600"]]))
    assert.equals("AB\1", value([["\x41\102\001"]]))
    assert.equals("C:\\path\\n no escape\nsecond line", value("`C:\\path\\n no escape\nsecond line`"))
    assert.equals(42, value("42"))
    assert.equals(1.5, value("1.5"))
    assert.equals(1.5e3, value("1.5e3"))
    assert.equals(0.5, value(".5")) -- as Alloy's scanner: a fraction without its 0, a number ending in "."
    assert.equals(2, value("2."))
    assert.equals(1e-2, value(".1e-1"))
    assert.equals(420, value("0644")) -- Alloy reads an integer with Go's ParseInt(lit, 0, 64): octal
    assert.equals(9, value("09")) -- not octal: Go's ParseFloat reads it
    assert.equals(2 ^ 60, value("1152921504606846976")) -- exact
    assert.equals(1e20, value("100000000000000000000")) -- past uint64: a float in Alloy too
    assert.equals("a\nb", value("`a\r\nb`")) -- Go's Unquote drops a raw string's carriage returns
    assert.equals(true, value("true"))
    assert.equals(false, value("false"))
    assert.is_nil(value("null"))
  end)

  it("skips a byte order mark at the start of the file, as Alloy's scanner", function()
    local body, err = parse("\239\187\191a {\n  x = 1\n}\n")
    assert.is_truthy(body, err)
    assert.same({ "a", 1, 1 }, { body[1].name, body[1].line, body[1].col })
    local _, err2 = parse("\239\187\191a {\n  x = 1 +\n}\n")
    assert.equals("t.alloy:3:1: expected a value, got '}'", err2)
  end)

  it("reads lists and objects, with trailing commas, newlines and comments inside", function()
    assert.same({ 1, 2, 3 }, value("[1, 2, 3]"))
    assert.same({ 1, { 2 } }, value("[\n  1, // one\n  [2], /* two */\n]"))
    assert.same({}, value("[]"))
    assert.same({ a = 1, ["b c"] = "x", __address__ = "h:1" },
      value('{ a = 1, "b c" = "x",\n "__address__" = "h:1", }'))
    assert.same({}, value("{}"))
  end)

  it("applies Alloy's operator precedence and associativity", function()
    assert.equals(7, value("1 + 2 * 3"))
    assert.equals(9, value("(1 + 2) * 3"))
    assert.equals(2 ^ 9, value("2 ^ 3 ^ 2")) -- right-associative
    assert.equals(-1, value("1 - 1 - 1")) -- left-associative
    assert.equals(1, value("7 % 3"))
    assert.equals(true, value("1 + 1 == 2 && 3 > 2"))
    assert.equals(true, value("false || 1 < 2 && !false"))
    assert.equals(true, value('"a" + "b" == "ab"'))
    assert.equals(true, value('[1, {a = 2}] == [1, {a = 2}]'))
    assert.equals(true, value('"abc" < "abd"'))
    assert.equals(-3, value("-(1 + 2)"))
    -- Alloy divides two integers as integers (Go's /, toward zero), anything with a float as floats
    assert.equals(3, value("7 / 2"))
    assert.equals(-3, value("-7 / 2"))
    assert.equals(3.5, value("7.0 / 2"))
    assert.equals(3.5, value("7 / 2e0"))
    assert.equals(0.75, value("1.5 * 2 / 4"))
    assert.equals(2, value("(10 - 3) / (1 + 2)"))
    assert.equals(1.5, value("7 / 2 / 2.0"))
    assert.equals(false, value("!true"))
  end)

  it("indexes lists from 0 and reads object fields", function()
    assert.equals("b", value('["a", "b"][1]'))
    assert.equals(2, value('{a = {b = 2}}.a.b'))
    assert.equals(2, value('{a = {b = 2}}["a"]["b"]'))
    assert.is_nil(value('{a = 1}["b"]')) -- a missing key is null, as Alloy's
    assert.is_nil(value('{}["b"]'))
    -- as Alloy's: a list index out of range, a list indexed by a string, an object by a number,
    -- a secret, a constant that does not exist are errors, not null
    assert.equals("t.alloy:1:5: index 5 is out of range of a list of 1", eval_err('["a"][5]'))
    assert.equals("t.alloy:1:5: index 0 is out of range of a list of 0", eval_err('[][0]'))
    assert.equals("t.alloy:1:5: a list is indexed by a number, got string", eval_err('["a"]["x"]'))
    assert.equals("t.alloy:1:5: an object is indexed by a string, got number", eval_err('{a = 1}[0]'))
    assert.equals("t.alloy:1:5: cannot index secret", select(2, pcall(require("moonwatch.alloy.stdlib").index,
      require("moonwatch.schema").secret("x"), "reveal")):gsub("^", "t.alloy:1:5: "))
    -- a field that does not exist is an error (Alloy's); [] of a missing key is null
    assert.equals('t.alloy:1:5: field "b" does not exist', eval_err("{a = 1}.b"))
    assert.equals('t.alloy:1:5: cannot access field "len" on string', eval_err('"abc".len'))
    assert.equals('t.alloy:1:5: cannot access field "a" on list', eval_err("[1].a"))
    assert.equals('t.alloy:1:5: constants has no field "nope" (it has hostname, os, arch)',
      eval_err("constants.nope"))
  end)

  it("calls the standard library functions configurations use, flat and namespaced", function()
    assert.same({ 1, 2, 3 }, value("concat([1], [2, 3])"))
    assert.same({ 1, 2 }, value("array.concat([1], [2])"))
    assert.equals("x", value('coalesce("", null, "x", "y")'))
    assert.equals(os.getenv("HOME"), value('sys.env("HOME")'))
    assert.equals(os.getenv("HOME"), value('env("HOME")'))
    assert.equals("", value('sys.env("MOONWATCH_SURELY_UNSET_VARIABLE")'))
    assert.same({ a = { 1, 2 } }, value([[json_decode("{\"a\": [1, 2]}")]]))
    assert.same({ a = true }, value([[encoding.from_json(`{"a": true}`)]]))
    assert.equals("job-7 3.50 x", value('format("%s-%d %.2f %v", "job", 7, 3.5, "x")'))
    assert.equals("a,b", value('join(["a", "b"], ",")'))
    assert.same({ "a", "b", "" }, value('split("a/b/", "/")'))
    assert.equals("abc", value('to_lower("AbC")'))
    assert.equals("ABC", value('string.to_upper("abc")'))
    assert.equals("abc", value('trim("--abc--", "-")'))
    assert.equals("bar", value('trim_prefix("foobar", "foo")'))
    assert.equals("foo", value('string.trim_suffix("foobar", "bar")'))
    assert.equals("a b", value('trim_space("  a b \\n")'))
    assert.equals("a-b-c", value('replace("a.b.c", ".", "-")'))
    assert.equals("x", value('string.replace(string.trim_space(" x "), "y", "z")'))
    assert.is_string(value("constants.hostname"))
  end)

  it("formats as Go's fmt, splits and replaces by characters as Go's strings", function()
    -- (the expected values are Go's output)
    assert.equals('"a\\tb\\nc\\x00é\\\\"', value([[format("%q", "a\tb\nc\x00é\\")]]))
    assert.equals("[1 a 1.5]|map[a:x b:1]", value('format("%v|%v", [1, "a", 1.5], {b = 1, a = "x"})'))
    assert.equals("123456789012345|9007199254740992 -42",
      value('format("%v|%v %v", 123456789012345, 9007199254740992, -42)'))
    assert.equals("123456.5 1.2345675e+06 0.0001 1.234e-05 0.6666666666666666 3.25e-07",
      value('format("%v %v %v %v %v %v", 123456.5, 1234567.5, 0.0001, 0.00001234, 2.0 / 3, 3.25e-7)'))
    assert.equals("%!d(float64=2.5)|6869|FF|  3.1|true", value('format("%d|%x|%X|%5.1f|%t", 2.5, "hi", 255, 3.14159, true)'))
    assert.same({ "h", "é", "l", "l", "o" }, value('split("héllo", "")'))
    -- a number given for a string is converted, as Alloy's decoder does (FormatFloat 'f', -1)
    assert.equals("5", value("to_upper(5)"))
    assert.equals("1-2.5-0.000001-123456789012", value('join([1, 2.5, 0.000001, 123456789012], "-")'))
    assert.equals("234", value("trim_prefix(1234, 1)"))
    assert.same({ "1", "5" }, value('split(1.5, ".")'))
    assert.equals("7", value("format(7)"))
    assert.equals("-h-é-", value('replace("hé", "", "-")'))
  end)

  it("json_decode refuses what Go's encoding/json refuses", function()
    for _, j in ipairs({ "NaN", "Infinity", "-Infinity", "0x10", "1e400", "[1, 2", "" }) do
      assert.matches("^t%.alloy:1:5: json_decode: ", eval_err("json_decode(`" .. j .. "`)"), nil)
    end
  end)

  it("json_decode keeps null fields and list items as Alloy's encoding.from_json does", function()
    local NULL = require("cjson").null
    -- (the expected values are Alloy's: a null field exists and reads as null)
    assert.same({ a = 1, b = NULL }, value([[json_decode(`{"a": 1, "b": null}`)]]))
    assert.is_nil(value([[encoding.from_json(`{"a": 1, "b": null}`).b]]))
    assert.is_nil(value([[encoding.from_json(`{"a": 1, "b": null}`)["b"] ]]))
    assert.equals("d", value([[coalesce(encoding.from_json(`{"b": null}`).b, "d")]]))
    assert.equals('t.alloy:1:5: field "c" does not exist', eval_err([[encoding.from_json(`{"b": null}`).c]]))
    assert.equals("map[a:1 b:<nil>]", value([[format("%v", json_decode(`{"a": 1, "b": null}`))]]))
    -- lists: the null stays in its place (it was refused: Lua lists cannot hold nil)
    assert.same({ 1, NULL, 3 }, value("json_decode(`[1, null, 3]`)"))
    assert.is_nil(value("json_decode(`[1, null, 3]`)[1]"))
    assert.equals(3, value("json_decode(`[1, null, 3]`)[2]"))
    assert.equals("[1 <nil> 3]", value([[format("%v", json_decode(`[1, null, 3]`))]]))
    assert.is_nil(value("json_decode(`null`)"))
    assert.is_true(value([[json_decode(`{"a": null, "b": 1}`) == {b = 1}]]))
    assert.is_true(value([[json_decode(`{"a": [null]}`) == json_decode(`{"a": [null]}`)]]))
    -- as an argument: a null field is no field, a null in a list is refused naming it
    local schema = require("moonwatch.schema")
    local args = { args = { labels = { type = "map", of = { type = "string" } }, tags = { type = "list",
      of = { type = "string" } }, targets = { type = "targets" }, name = { type = "string", default = "d" } } }
    local out, problems = schema.validate(args, value(
      [[json_decode(`{"labels": {"a": "x", "b": null}, "targets": [{"__address__": "t:1", "env": null}], "name": null}`)]]))
    assert.same({}, problems)
    assert.same({ labels = { a = "x" }, targets = { { __address__ = "t:1" } }, tags = nil, name = "d" }, out)
    out, problems = schema.validate(args, value([[json_decode(`{"tags": ["a", null]}`)]]))
    assert.same({ "a" }, out.tags)
    assert.same({ { path = "tags[2]", msg = "a list cannot hold null in moonwatch" } }, problems)
  end)

  it("keeps a secret secret: string functions refuse it as Alloy's do, format's result is a secret", function()
    local stdlib = require("moonwatch.alloy.stdlib")
    local schema = require("moonwatch.schema")
    local pw = schema.secret("Hunter2")
    for name, args in pairs({ to_lower = { pw }, to_upper = { pw }, trim_space = { pw }, trim = { pw, "x" },
      trim_prefix = { pw, "H" }, trim_suffix = { "x", pw }, split = { pw, "u" }, replace = { pw, "H", "h" },
      join = { { "a", pw }, "," }, json_decode = { pw }, ["sys.env"] = { pw } }) do
      local ok, err = pcall(stdlib.functions[name], unpack(args))
      assert.is_false(ok, name)
      assert.matches("secret", err, nil, true)
      assert.is_nil(err:find("Hunter2", 1, true), name)
      assert.is_nil(err:find("hunter2", 1, true), name)
    end
    for _, f in ipairs({ "%s", "%v", "%d", "%q", "%x" }) do
      local v = stdlib.functions.format("user:" .. f, pw)
      assert.is_true(schema.is_secret(v), f)
      assert.is_nil(tostring(v):find("unter2", 1, true), f)
    end
    assert.equals("user:Hunter2", stdlib.functions.format("user:%s", pw):reveal())
    assert.equals("Hunter2", stdlib.functions["convert.nonsensitive"](pw))
  end)

  it("refuses bad input with file:line:col and a clear message", function()
    local cases = {
      { 'a "b" {\n  x = 1\n', "t.alloy:1:1: block not closed (missing '}')" },
      { 'x = "abc\n', 't.alloy:1:5: string not terminated (missing ")' },
      { 'x = `abc', "t.alloy:1:5: raw string not terminated (missing `)" },
      { 'x = "\\q"\n', "t.alloy:1:6: unknown escape sequence \\q" },
      { 'x = "\\u12"\n', "t.alloy:1:6: invalid escape \\u: expected 4 hex digits" },
      { "/* never closed", "t.alloy:1:1: comment not terminated (missing */)" },
      { "a {\n  b = 1 c = 2\n}\n", "t.alloy:2:9: expected a newline after the attribute b, got identifier c" },
      { "a.b = 1\n", "t.alloy:1:1: attribute name a.b must be a single identifier (a block needs { ... })" },
      { "a {\n  x = [1, 2\n}\n", "t.alloy:3:1: expected ',' or ']', got '}'" },
      { "a {\n  x = {a = 1, a = 2}\n}\n", 't.alloy:2:15: duplicate object key "a"' },
      { "a {\n  x = 1 +\n}\n", "t.alloy:3:1: expected a value, got '}'" },
      { "a {\n  x = 1.5e\n}\n", "t.alloy:2:7: malformed number: exponent has no digits" },
      { "}\n", "t.alloy:1:1: unexpected '}' (no block open)" },
      { "a {\n  x = #\n}\n", 't.alloy:2:7: unexpected character "#"' },
      { 'a "l" b {}\n', "t.alloy:1:7: expected '=' or '{' after a, got identifier b" },
      { 'a {\n  x "l" = 1\n}\n', 't.alloy:2:5: an attribute takes no label: write x = value, or x "l" { ... } for a block' },
      { "a `l` {\n}\n", "t.alloy:1:3: a block's label is a double-quoted string, got a raw string" },
      -- an integer Alloy holds exactly (int64, uint64) that a Lua number cannot
      { "a {\n  x = 9007199254740993\n}\n", "t.alloy:2:7: integer 9007199254740993 cannot be held exactly "
        .. "(moonwatch's numbers are exact up to 2^53 = 9007199254740992)" },
      -- Alloy's scanner: no hexadecimal numbers, no ';'
      { "a {\n  x = 0xff\n}\n", "t.alloy:2:7: malformed number 0x" },
      { "a {\n  x = 1; y = 2\n}\n", 't.alloy:2:8: unexpected character ";"' },
      -- a newline after a value ends the statement: an operator or a field access on the next
      -- line does not continue the value, a block's label and '{' are on its name's line
      { "a {\n  x = 1\n    + 2\n}\n", "t.alloy:3:5: expected an attribute (name = value) or a block "
        .. "(name { ... }), got '+'" },
      { "a {\n  x = b\n    .c\n}\n", "t.alloy:3:5: expected an attribute (name = value) or a block "
        .. "(name { ... }), got '.'" },
      { 'a "l"\n{\n}\n', "t.alloy:1:6: unexpected newline after the label of a (write the '{' on the same line)" },
      { "a\n{\n}\n", "t.alloy:1:2: unexpected newline after a (a statement ends at the end of its line: write "
        .. "name = value, or name { on one line)" },
    }
    for _, c in ipairs(cases) do
      local body, err = parse(c[1])
      assert.is_nil(body, c[1])
      assert.equals(c[2], err)
    end
  end)

  it("bounds nesting and size", function()
    local deep = "x = " .. string.rep("[", parser.MAX_DEPTH + 1) .. string.rep("]", parser.MAX_DEPTH + 1) .. "\n"
    local _, err = parse(deep)
    assert.matches("nested too deeply", err)
    local blocks = string.rep("a {\n", parser.MAX_DEPTH + 1) .. string.rep("}\n", parser.MAX_DEPTH + 1)
    _, err = parse(blocks)
    assert.matches("nested too deeply", err)
    _, err = parse(string.rep(" ", parser.MAX_SIZE + 1))
    assert.matches("^t.alloy:1:1: file too large", err)
    assert.truthy(parse("x = " .. string.rep("[", parser.MAX_DEPTH - 1) .. string.rep("]", parser.MAX_DEPTH - 1)
      .. "\n"))
  end)

  it("loads many repeated blocks in linear time", function()
    local parts = { 'a "l" {' }
    for i = 1, 8000 do
      parts[#parts + 1] = "  b" .. i .. " {\n    x = 1\n  }\n  b" .. i .. " {}"
    end
    parts[#parts + 1] = "}\n"
    local t0 = os.clock()
    local r = loader.load("t.alloy", { source = table.concat(parts, "\n") })
    assert.is_true(os.clock() - t0 < 1.5, "took " .. (os.clock() - t0) .. " s") -- was 7 s (quadratic)
    assert.equals(0, #r.problems)
    local pos = r.declarations[1].positions
    assert.same({ 15999, 5 }, pos["b4000[1].x"]) -- where the schema's problems point
    assert.same({ 16001, 3 }, pos["b4000[2]"])
    assert.same({ 15998, 3 }, pos["b4000[1]"])
  end)

  it("reads dotted nested blocks other than stages as nested blocks, a label as their name", function()
    -- pyroscope.scrape's profiling_config, as Alloy's documentation writes it
    local src = 'p "l" {\n  c {\n    profile.fgprof {\n      enabled = true\n    }\n    x = 1\n'
      .. '    profile.custom "heap" {\n      path = "/h"\n    }\n    profile.custom "other" {\n      path = "/o"\n'
      .. '    }\n  }\n  stage.json {\n    y = 2\n  }\n}\n'
    local r = loader.load("t.alloy", { source = src })
    assert.equals(0, #r.problems)
    local d = r.declarations[1]
    assert.same({ fgprof = { enabled = true }, custom = { { name = "heap", path = "/h" }, { name = "other", path = "/o" } } },
      d.args.c.profile)
    assert.equals(1, d.args.c.x)
    assert.equals("json", d.args[1].tag) -- stage.* stays a positional tagged entry
    assert.same({ 3, 5 }, d.positions["c.profile"])
    assert.same({ 10, 5 }, d.positions["c.profile.custom[2]"])
    local lua = assert(convert.convert(src, "t.alloy"))
    assert.matches("profile = {\n +fgprof = {\n +enabled = true,\n +},\n +custom = {\n +{\n +name = \"heap\",", lua)
  end)

  it("refuses null in a list (a Lua list cannot hold it: [1, null, 3] was [1])", function()
    assert.equals("t.alloy:1:9: a list cannot hold null in moonwatch", eval_err("[1, null, 3]"))
    assert.equals("t.alloy:1:6: a list cannot hold null in moonwatch", eval_err('[{a = 1}["b"]]'))
    local r = loader.load("t.alloy", { source = 'a "l" {\n  x = [1, null, 3]\n  y = [{}["k"], 2]\n}\n' })
    assert.equals(2, #r.problems)
    assert.same({ 2, 11, 'a "l": x: a list cannot hold null in moonwatch' },
      { r.problems[1].line, r.problems[1].col, r.problems[1].msg })
    assert.same({ 3, 8, 'a "l": y: a list cannot hold null in moonwatch' },
      { r.problems[2].line, r.problems[2].col, r.problems[2].msg })
  end)

  it("reports evaluation errors at the expression", function()
    assert.equals("t.alloy:1:7: cannot add number and bool", eval_err("1 + true"))
    assert.equals("t.alloy:1:5: unknown function nope", eval_err("nope(1)"))
    assert.equals("t.alloy:1:5: to_lower: argument 1 must be a string, got bool", eval_err("to_lower(true)"))
    assert.equals("t.alloy:1:7: operator && needs bools, got number", eval_err("1 && true"))
    -- as Alloy's calls: a function takes its number of arguments (extra ones were ignored)
    assert.equals("t.alloy:1:5: to_lower: expected 1 argument, got 2", eval_err('to_lower("A", "b")'))
    assert.equals("t.alloy:1:5: string.replace: expected 3 arguments, got 2", eval_err('string.replace("a", "b")'))
    assert.equals("t.alloy:1:5: sys.env: expected 1 argument, got 0", eval_err("sys.env()"))
    assert.equals("t.alloy:1:5: format: expected at least 1 argument, got 0", eval_err("format()"))
    -- Alloy evaluates both sides of && and || (no short-circuit): both must be bools
    assert.equals("t.alloy:1:11: operator && needs bools, got string", eval_err('false && "x"'))
    assert.equals("t.alloy:1:10: operator || needs bools, got null", eval_err("true || null"))
    assert.equals("t.alloy:1:10: operator && needs bools, got null", eval_err("null && true"))
    assert.equals("t.alloy:1:17: cannot add number and bool", eval_err("false && (1 + true)"))
  end)

  -- What `moonwatch convert` writes for `x = EXPR` computes what the loader does: the same
  -- value, or an error for both.
  local function converted(expr)
    local lua, cerr = convert.convert("a \"l\" {\n  x = " .. expr .. "\n}\n", "t.alloy")
    if not lua then -- refused, as the loader refuses it
      return false, cerr
    end
    local got
    local stdlib = require("moonwatch.alloy.stdlib")
    local env = { alloy = stdlib.helper(), concat = stdlib.functions.concat, a = function()
      return function(args)
        got = args
      end
    end }
    local chunk = assert(loadstring(lua, "=converted"))
    setfenv(chunk, env)
    local ok, err = pcall(chunk)
    if not ok then
      return false, err
    end
    return true, got.x
  end

  it("converts operators to Lua that computes the same values and the same errors", function()
    for _, expr in ipairs({ "- -1", "--1", "-2 ^ 2", "-(2) ^ 2", "2 ^ -2", "!!true", "- - -3 * 2", "10 / 4",
      "-7 / 2", "7.0 / 2", "1.5 * 2 / 4",
      "7 % -3", "2 ^ 3 ^ 2", "1 - 1 - 1", "1 < 2 == true", "\"b\" > \"a\"" }) do
      local ok, v = converted(expr)
      assert.is_true(ok, expr .. ": " .. tostring(v))
      assert.equals(value(expr), v, expr)
    end
    -- what the loader refuses, the converted pipeline refuses too
    for _, expr in ipairs({ "1 / 0", "1 % 0", "\"5\" * 2", "\"5\" - 1", "1 < \"2\"", "-\"1\"", "null || \"d\"",
      "true || 1", "false && \"x\"", "!null", '"abc".len', "{a = 1}.b", "[1].a" }) do
      eval_err(expr)
      local ok, v = converted(expr)
      assert.is_false(ok, expr .. " gave " .. tostring(v))
    end
  end)

  it("converts random expressions to Lua that computes what the loader does (1,000, a fixed seed)", function()
    local ATOMS = { "1", "2", "0", "7", "2.5", ".5", "1e2", "-3", '"a"', '""', "true", "false", "null", "[]", "[1, 2]",
      "{a = 1}", "{}", '"5"', "0644", '"%v"', '"%d"', '" x "', '"a,b"', '["x", "y"]' }
    local BIN = { "+", "-", "*", "/", "%", "^", "==", "!=", "<", "<=", ">", ">=", "&&", "||" }
    local FUNCS = { "concat", "coalesce", "format", "join", "split", "to_lower", "trim", "trim_prefix", "replace",
      "json_decode", "string.format" }
    math.randomseed(7)
    local function gen(d)
      local r = math.random(1, d > 3 and 1 or 6)
      if r == 1 then
        return ATOMS[math.random(#ATOMS)]
      elseif r == 2 then
        return "(" .. gen(d + 1) .. " " .. BIN[math.random(#BIN)] .. " " .. gen(d + 1) .. ")"
      elseif r == 3 then
        return gen(d + 1) .. " " .. BIN[math.random(#BIN)] .. " " .. gen(d + 1)
      elseif r == 4 then
        return ({ "-", "!", "- -" })[math.random(3)] .. gen(d + 1)
      elseif r == 5 then
        local args = {}
        for i = 1, math.random(0, 3) do
          args[i] = gen(d + 1)
        end
        return FUNCS[math.random(#FUNCS)] .. "(" .. table.concat(args, ", ") .. ")"
      end
      return "[" .. gen(d + 1) .. ", " .. gen(d + 1) .. "][" .. gen(d + 1) .. "]"
    end
    local stdlib = require("moonwatch.alloy.stdlib")
    for _ = 1, 1000 do
      local expr = gen(0)
      local ok1, v1 = pcall(value, expr)
      local ok2, v2 = converted(expr)
      assert.equals(ok1, ok2, expr .. ": " .. tostring(v1) .. " / " .. tostring(v2))
      assert.is_true(not ok1 or stdlib.eq(v1, v2) or (v1 ~= v1 and v2 ~= v2), expr)
    end
  end)

  it("convert refuses what the loader refuses in a block, instead of keeping one of two values", function()
    for _, c in ipairs({
      { 'a "l" {\n  x = 1\n  x = 2\n}\n', "t.alloy:3:3: x: set twice in the same block" },
      { 'a "l" {\n  b {\n    x = 1\n    x = "s"\n  }\n}\n', "t.alloy:4:5: b.x: set twice in the same block" },
      { 'a "l" {\n  b = 1\n  b {\n  }\n}\n', "t.alloy:3:3: b: given both as an attribute and as a block" },
      { 'a "l" {\n  b {\n  }\n  b = 1\n}\n', "t.alloy:4:3: b: given both as an attribute and as a block" },
      { 'a "l" {\n  b "x" {\n  }\n}\n', 't.alloy:2:3: b "x": a nested block takes no label' },
      { 'a "l" {}\na "l" {}\n', 't.alloy:2:1: a "l": already declared at t.alloy:1:1' },
      { 'logging {}\nlogging {}\n', "t.alloy:2:1: logging: declared twice" },
      { 'a "l" {\n  x = [1, null]\n}\n', "t.alloy:2:11: a list cannot hold null in moonwatch" },
    }) do
      local body = assert(parser.parse(c[1], "t.alloy"))
      local r = loader.load("t.alloy", { source = c[1] })
      assert.is_true(#r.problems > 0, c[1]) -- the loader refuses it
      assert.is_truthy(body)
      local lua, err = convert.convert(c[1], "t.alloy")
      assert.is_nil(lua, c[1])
      assert.equals(c[2], err)
    end
  end)

  it("replays the fuzz corpus: every input parses or fails with a positioned message", function()
    local dir = SRC .. "/tests/fuzz/corpus/alloy"
    local n = 0
    for name in proc.sh("ls " .. dir):gmatch("[^\n]+") do
      local src = assert(proc.read_file(dir .. "/" .. name))
      local ok, body, err = pcall(parser.parse, src, "f.alloy")
      assert.is_true(ok, name .. ": " .. tostring(body))
      if not body then
        assert.matches("^f%.alloy:%d+:%d+: ", err, name)
      else -- what parses loads, and converts to Lua that Lua's parser accepts
        assert.truthy(loader.load("f.alloy", { source = src }), name)
        local lua, cerr = convert.convert(src, "f.alloy")
        if lua then
          assert.truthy(loadstring(lua, "=converted"), name)
        else
          assert.matches("^f%.alloy:%d+:%d+: ", cerr, name)
          if cerr:find("cannot be written as a Lua pipeline", 1, true) then
            assert.matches("too complex", cerr, name) -- only Lua's depth limit, never a converter bug
          end
        end
      end
      n = n + 1
    end
    assert.is_true(n >= 5, "corpus has " .. n .. " inputs")
  end)
end)
