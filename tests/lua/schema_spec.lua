-- The schema layer: every argument checked completely (types including uint,
-- ranges, regexes, maps of lists, groups), validators that raise reported as
-- internal errors, and what users are shown of an error (moonwatch.errors).
local schema = require("moonwatch.schema")
local errors = require("moonwatch.errors")

local function problems_of(args, value)
  local _, ps = schema.validate({ args = args }, value)
  local out = {}
  for i, p in ipairs(ps) do
    out[i] = (p.path ~= "" and (p.path .. ": ") or "") .. p.msg
  end
  return out, ps
end

local function one_problem(args, value)
  local ps = problems_of(args, value)
  assert.equals(1, #ps, table.concat(ps, "\n"))
  return ps[1]
end

describe("schema types", function()
  it("uint refuses negative and fractional numbers", function()
    local args = { n = { type = "uint", default = 0 } }
    assert.equals("n: expected a non-negative integer, got number -5", one_problem(args, { n = -5 }))
    assert.equals("n: expected a non-negative integer, got number 1.5", one_problem(args, { n = 1.5 }))
    assert.same({}, (problems_of(args, { n = 7 })))
  end)

  it("regex compiles the value as an RE2 regex", function()
    local args = { re = { type = "regex" } }
    assert.equals('re: invalid regex "(": missing closing ) (at offset 1)', one_problem(args, { re = "(" }))
    assert.matches("lookahead", one_problem(args, { re = "(?=x)" }), 1, true)
    assert.equals("re: expected a regex string, got number 1", one_problem(args, { re = 1 }))
    assert.same({}, (problems_of(args, { re = "^a.*(?P<x>b)$" })))
  end)

  it("min, max and positive bound numbers and durations", function()
    local args = {
      f = { type = "number", min = 0, max = 1 },
      c = { type = "int", min = 1 },
      d = { type = "duration", positive = true },
      m = { type = "number", max = 10 },
    }
    assert.equals("f: must be between 0 and 1, got 2", one_problem(args, { f = 2 }))
    assert.equals("c: must be at least 1, got 0", one_problem(args, { c = 0 }))
    assert.equals("d: must be greater than 0s, got 0s", one_problem(args, { d = "0s" }))
    assert.equals("d: must be greater than 0s, got -1m", one_problem(args, { d = "-1m" }))
    assert.equals("m: must be at most 10, got 11", one_problem(args, { m = 11 }))
    assert.same({}, (problems_of(args, { f = 0.5, c = 1, d = "1s", m = 10 })))
  end)

  it("a map of lists takes one value or a list per key, and refuses anything else", function()
    local args = { params = { type = "map", of = { type = "list", of = { type = "string" }, single = true },
      default = {} } }
    local out = schema.validate({ args = args }, { params = { a = "1", b = { "2", "3" } } })
    assert.same({ a = { "1" }, b = { "2", "3" } }, out.params)
    assert.equals('params: expected a map (a table of name = value), got string "bad"',
      one_problem(args, { params = "bad" }))
    assert.equals('params["a"][1]: expected a string, got number 1', one_problem(args, { params = { a = 1 } }))
    assert.equals("params: expected a map (a table of name = value), got a list",
      one_problem(args, { params = { "x" } }))
  end)

  it("headers are secrets, one or a list per name", function()
    local httpconfig = require("moonwatch.httpconfig")
    local out = schema.validate({ args = { http_headers = httpconfig.ARGS.http_headers } },
      { http_headers = { ["X-A"] = "v", ["X-B"] = { "1", "2" } } })
    assert.is_true(schema.is_secret(out.http_headers["X-A"][1]))
    assert.equals("2", out.http_headers["X-B"][2]:reveal())
    assert.equals('http_headers: expected a map (a table of name = value), got string "bad"',
      one_problem({ http_headers = httpconfig.ARGS.http_headers }, { http_headers = "bad" }))
  end)

  it("require_one asks for at least one of a group", function()
    local sch = { args = { a = { type = "string" }, b = { type = "string" } }, require_one = { { "a", "b" } } }
    local _, ps = schema.validate(sch, {})
    assert.equals("needs at least one of a or b", ps[1].msg)
    local _, ok = schema.validate(sch, { b = "x" })
    assert.same({}, ok)
  end)
end)

describe("schema validators", function()
  it("return nil, msg or a message; both are problems of the argument", function()
    local args = {
      a = { type = "string", check = function(v)
        return v ~= "ok" and "must be ok" or nil
      end },
      b = { type = "string", check = function(v)
        if v ~= "ok" then
          return nil, "must be ok too"
        end
      end },
    }
    local ps = problems_of(args, { a = "x", b = "y" })
    assert.same({ "a: must be ok", "b: must be ok too" }, ps)
  end)

  it("a validator that raises is an internal problem: message without the source path, traceback kept", function()
    -- as `http_headers = "bad"` crashed `moonwatch check` when the argument was typed `any`
    local sch = { args = { h = { type = "any" } }, validate = function(a)
      return require("moonwatch.http_client").validate({ http_headers = a.h })
    end }
    local _, ps = schema.validate(sch, { h = "bad" })
    assert.equals(1, #ps)
    assert.is_true(ps[1].internal)
    assert.equals("bad argument #1 to 'pairs' (table expected, got string)", ps[1].msg)
    assert.matches("stack traceback", ps[1].traceback, 1, true)
  end)

  it("a block's validate runs even when a sibling block has a problem (every problem is reported)", function()
    local inner = { args = { x = { type = "int" } }, validate = function(b)
      if b.x > 1 then
        return nil, "x too big"
      end
    end }
    local sch = { args = { a = { type = "block", schema = inner }, b = { type = "block", schema = inner } } }
    local _, ps = schema.validate(sch, { a = { x = "no" }, b = { x = 5 } })
    local msgs = {}
    for i, p in ipairs(ps) do
      msgs[i] = p.path .. ": " .. p.msg
    end
    assert.same({ 'a.x: expected an integer, got string "no"', "b: x too big" }, msgs)
  end)

  it("UNKNOWN (a value known when running) passes any type and skips its block's validate", function()
    local called = false
    local sch = { args = { n = { type = "uint" }, s = { type = "regex" } }, validate = function()
      called = true
    end }
    local out, ps = schema.validate(sch, { n = schema.UNKNOWN, s = "a" })
    assert.same({}, ps)
    assert.equals(schema.UNKNOWN, out.n)
    assert.is_false(called)
    schema.validate(sch, { n = 1, s = "a" })
    assert.is_true(called)
  end)

  it("check_definition refuses unknown types, lists without `of` and groups naming no argument", function()
    assert.has_error(function()
      schema.check_definition({ args = { a = { type = "strnig" } } }, "x")
    end, "x: argument a: unknown type strnig")
    assert.has_error(function()
      schema.check_definition({ args = { a = { type = "list" } } }, "x")
    end, "x: argument a: a list needs `of` (the element spec)")
    assert.has_error(function()
      schema.check_definition({ args = { a = { type = "string" } }, require_one = { { "a", "b" } } }, "x")
    end, "x: require_one names b, which is not an argument")
  end)
end)

describe("moonwatch.errors", function()
  local here = debug.getinfo(1, "S").source:sub(2)

  it("an error raised in moonwatch's sources is internal, shown without its path", function()
    local _, err = pcall(require("moonwatch.http_client").validate, { http_headers = "bad" })
    assert.is_true(errors.is_internal(err))
    local shown = errors.describe(err .. "\nstack traceback:\n\t...", "prometheus.scrape.x")
    assert.equals("internal error in prometheus.scrape.x: bad argument #1 to 'pairs' (table expected, got string)",
      shown)
    assert.is_nil(shown:find("/lua/moonwatch/", 1, true))
  end)

  it("a message raised without a position, or in the user's own file, is shown as it is", function()
    assert.is_false(errors.is_internal("opening the WAL: permission denied"))
    assert.equals("opening the WAL: permission denied", errors.describe("opening the WAL: permission denied", "x"))
    local user = here .. ":12: boom"
    assert.is_false(errors.is_internal(user))
    assert.equals(user, errors.describe(user .. "\nstack traceback:", "x"))
    assert.is_true(errors.is_internal({}))
    assert.is_true(errors.is_source(debug.getinfo(schema.validate, "S").source))
    local src = debug.getinfo(schema.validate, "S").source:gsub("^@", "")
    assert.is_true(errors.is_source("..." .. src:sub(-20)))
    assert.is_false(errors.is_source(here))
  end)
end)

describe("schema positional entries and tagged values", function()
  local S = schema
  local SPEC = { type = "tagged", kind = "stage", variants = {
    json = { args = { expressions = { type = "map", of = { type = "string" }, required = true } } },
    drop = { args = { source = { type = "string", default = "" } } },
  } }
  local BLOCK = { positional = "stage", args = {
    forward_to = { type = "any" },
    stage = { type = "list", of = SPEC, default = {} },
  } }

  it("takes positional entries, in order, into the argument the schema names", function()
    local out, problems = S.validate(BLOCK, { forward_to = 1, S.tagged("stage", "drop", {}, 3),
      S.tagged("stage", "json", { expressions = { a = "" } }, 4) })
    assert.same({}, problems)
    assert.same({ { tag = "drop", args = { source = "" }, line = 3 },
      { tag = "json", args = { expressions = { a = "" } }, line = 4 } }, out.stage)
  end)

  it("refuses an unknown tag with a did-you-mean and the problems of a tagged value at its own line", function()
    local _, problems = S.validate(BLOCK, { S.tagged("stage", "jsn", {}, 7), S.tagged("stage", "json", {}, 9),
      S.tagged("stage", "drop", { sourc = "x" }, 11) })
    table.sort(problems, function(a, b)
      return a.line < b.line
    end)
    assert.same({ path = "stage.jsn", line = 7, msg = "unknown stage (did you mean stage.json?)" }, problems[1])
    assert.same({ path = "stage.json.expressions", line = 9, msg = "missing required argument" }, problems[2])
    assert.same({ path = "stage.drop.sourc", line = 11, msg = 'unknown argument (did you mean "source"?)' },
      problems[3])
  end)

  it("refuses positional values where the schema takes none, and both spellings at once", function()
    local _, p1 = S.validate({ args = { a = { type = "string" } } }, { a = "x", S.tagged("stage", "drop", {}, 1) })
    assert.matches("unexpected positional value stage.drop", p1[1].msg, 1, true)
    local _, p2 = S.validate(BLOCK, { stage = {}, S.tagged("stage", "drop", {}, 1) })
    assert.same("given both by name and as positional values: use one", p2[1].msg)
    local _, p3 = S.validate(BLOCK, { { "not a stage" } })
    assert.matches("expected stage.NAME { ... }, got a list", p3[1].msg, 1, true)
  end)
end)
