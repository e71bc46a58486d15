-- loki.process's Lua parsers never raise on what a log line or a pipeline may hold: Go time
-- layouts and values, logfmt, JMESPath paths, Go templates, LogQL selectors, JSON numbers.
-- Seeded random bytes and mutations of valid samples (a raise in a stage would cost its batch).
package.path = (os.getenv("MOONWATCH_SOURCE_DIR") or ".") .. "/stdlib/?.lua;" .. package.path
local gotime = require("loki.process.gotime")
local logfmt = require("loki.process.logfmt")
local jmespath = require("loki.process.jmespath")
local gotemplate = require("loki.process.gotemplate")
local selector = require("loki.process.selector")
local values = require("loki.process.values")

local ALPHABET = "0123456789-+:.,TZ _\"'=\\{}[]()|~!abcxyzJanMonPMUTC\n\t\255`$*?"

local function mutate(rng, s)
  local n = rng(0, 4)
  for _ = 1, n do
    local op, i = rng(1, 3), rng(1, #s + 1)
    local c = ALPHABET:sub(rng(1, #ALPHABET), rng(1, #ALPHABET))
    if op == 1 then
      s = s:sub(1, i - 1) .. c .. s:sub(i)
    elseif op == 2 then
      s = s:sub(1, i - 1) .. s:sub(i + rng(1, 3))
    else
      s = s:sub(1, i - 1) .. c .. s:sub(i + 1)
    end
  end
  return s
end

local function each_input(samples, fn)
  math.randomseed(42)
  local rng = math.random
  for _, s in ipairs(samples) do
    fn(s)
  end
  for _ = 1, 3000 do
    fn(mutate(rng, samples[rng(1, #samples)]))
  end
end

local function no_raise(fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then
    error(string.format("raised %s on %q", tostring(err), tostring((...))), 2)
  end
end

describe("loki.process parsers", function()
  it("gotime parses any value with any layout without raising", function()
    local layouts = { "RFC3339", "RFC3339Nano", "Unix", "UnixMs", "UnixNs", "ANSIC", "RFC1123Z", "Kitchen",
      "2006-01-02T15:04:05,000-07:00", "02/Jan/2006:15:04:05 -0700", "Jan _2 15:04:05.000", "__2 2006 pm MST Z07" }
    local zone = assert(gotime.zone("Europe/Paris"))
    local compiled = {}
    for _, l in ipairs(layouts) do
      compiled[#compiled + 1] = gotime.compile(l)
    end
    each_input({ "2019-04-30T02:12:41.8443515Z", "2023-11-14T22:13:20+01:00", "1562708916.000000123", "1562708916414",
      "Mon Jan  2 15:04:05 2006", "Mon, 02 Jan 2006 15:04:05 -0700", "3:04PM", "01/Jan/2023:00:00:01 +0200",
      "Nov  4 10:00:00.123" }, function(v)
      for _, c in ipairs(compiled) do
        no_raise(gotime.parse, c, v, zone, 2026)
        local sec, nsec = gotime.parse(c, v, nil, 2026)
        if sec then
          assert(type(sec) == "number" and sec % 1 == 0 and nsec >= 0 and nsec < 1e9, v)
        end
      end
      no_raise(gotime.compile, v) -- any string is a layout
    end)
  end)

  it("logfmt reads any line without raising", function()
    each_input({ 'a=1 b="two words" c', 'time=2012-11-01T22:08:41+00:00 msg="x \\"y\\" \\u00e9"', "=== \"\"" },
      function(v)
        no_raise(logfmt.each, v, function(k, x)
          assert(type(k) == "string" and type(x) == "string")
        end)
      end)
  end)

  it("decodes \\uXXXX escapes to UTF-8 in logfmt values and JMESPath quoted names", function()
    local got = {}
    logfmt.each('msg="\\u0041 \\u00e9 \\u20ac"', function(k, v)
      got[k] = v
    end)
    assert.equals("A \195\169 \226\130\172", got.msg)
    local steps = assert(jmespath.compile('"\\u00e9\\u20ac"'))
    assert.equals("x", jmespath.search(steps, { ["\195\169\226\130\172"] = "x" }))
  end)

  it("JMESPath paths, Go templates and LogQL selectors compile or are refused, never raise", function()
    each_input({ 'a.b[0].c', '"quoted-name".x[-1]', "{{ .Value | ToUpper }} {{ Replace .a \"x\" \"y\" -1 }}",
      '{{- default "d" .missing -}}', '{job="a", x=~"b.*"} |= "err" !~ `x+`', '{a!="", b!~"c"}',
      '{{ if eq .a "x" "xa" }}A{{ else if and .b (lt 1 2) }}B{{ else }}C{{ end }}',
      '{{ with .a }}{{ . | upper }}{{ else }}-{{ end }}{{/* c */}}',
      '{{ printf "%s %5d %q %x %%" .a 3 .b 255 }} {{ regexReplaceAll "(x)(?P<n>a)" .a "${n}$1$$" }}' }, function(v)
      no_raise(jmespath.compile, v)
      no_raise(selector.compile, v)
      local c = gotemplate.compile(v)
      if c then
        no_raise(gotemplate.execute, c, { Value = "v", a = "xa", Entry = "line" })
      end
      local sel = selector.compile(v)
      if sel then
        no_raise(selector.matches, sel, { job = "a" }, v)
      end
    end)
  end)

  it("Go templates: Trim/trim Prefix and Suffix (Alloy's and sprig's argument orders), and/or over 3", function()
    local function run(src)
      return gotemplate.execute(assert(gotemplate.compile(src)), { a = "--x--", e = "" })
    end
    assert.equals("x--|--x|--x--|x--|--x|--x--", run('{{ TrimPrefix .a "--" }}|{{ TrimSuffix .a "--" }}|'
      .. '{{ TrimPrefix .a "" }}|{{ trimPrefix "--" .a }}|{{ .a | trimSuffix "--" }}|{{ trimSuffix "y" .a }}'))
    assert.equals("--x--||1|--x--|1|", run('{{ and 1 .a }}|{{ and .a .e 1 }}|{{ and 1 2 1 }}|'
      .. '{{ or .e .a 0 }}|{{ or .e 0 1 }}|{{ or .e }}'))
  end)

  it("Go templates: if/else if/else/with/end, comparisons, Go's truth, and errors naming the action", function()
    local function run(src, data)
      local c, err = gotemplate.compile(src)
      if not c then
        return nil, err
      end
      return gotemplate.execute(c, data or { Value = "WARN", a = "xa", e = "", n = "12" })
    end
    assert.equals("OK", run('{{ if eq .Value "WARN" }}{{ Replace .Value "WARN" "OK" -1 }}{{ else }}{{ .Value }}{{ end }}'))
    assert.equals("info", run('{{ if eq .Value "WARN" }}OK{{ else }}{{ .Value }}{{ end }}', { Value = "info" }))
    assert.equals("B", run('{{ if .e }}A{{ else if eq .a "x" "xa" }}B{{ else }}C{{ end }}'))
    assert.equals("C", run('{{ if .e }}A{{ else if .missing }}B{{ else }}C{{ end }}'))
    assert.equals("", run("{{ if .e }}A{{ end }}"))
    assert.equals("XA|-", run("{{ with .a }}{{ . | ToUpper }}{{ end }}|{{ with .e }}x{{ else }}-{{ end }}"))
    assert.equals("true false true", run('{{ lt 1 2 }} {{ not .a }} {{ ne .a "b" }}'))
    assert.equals("xa  12", run('{{ or .e .a }} {{ and .a .e }} {{ .n }}'))
    assert.equals('xa|  3|"x\\ta"|ff|%', run('{{ printf "%s|%3d|%q|%x|%%" .a 3 "x\\ta" 255 }}'))
    assert.equals("a-x-", run('{{ regexReplaceAll "(x)(?P<n>a)" .a "${n}-$1-$9" }}'))
    assert.equals("$1", run('{{ regexReplaceAllLiteral "xa" .a "$1" }}'))
    assert.equals("abc", run('{{ trunc 3 "abcdef" }}'))
    assert.equals("def", run('{{ trunc -3 "abcdef" }}'))
    assert.equals("text", run("{{/* a comment */}}text"))
    assert.equals([["xa" "b\n"|'xa'|xa 3]], run([[{{ quote .a "b\n" }}|{{ squote .a }}|{{ cat .a nil 3 }}]]))
    assert.equals("map[Value:WARN a:xa e: n:12]", run("{{ . }}"))
    -- refused when the pipeline is checked, naming the action
    local function refused(src, msg)
      local c, err = gotemplate.compile(src)
      assert.is_nil(c, src)
      assert.equals(msg, err)
    end
    refused("{{ if .a }}x", "{{ if .a }}: unexpected EOF (no {{end}})")
    refused("x{{ end }}", "{{ end }}: unexpected end")
    refused("{{ else }}", "{{ else }}: unexpected else")
    refused("{{ if }}x{{ end }}", "{{ if }}: missing value for if")
    refused("{{ range .a }}x{{ end }}", "{{ range .a }}: {{ range }} is not supported (if, else, with and end are)")
    refused("{{ $x := .a }}", "{{ $x := .a }}: variables ($) are not supported")
    refused("{{ nope .a }}", '{{ nope .a }}: function "nope" not defined (supported: ' ..
      select(2, gotemplate.compile("{{ nope }}")):match("%(supported: (.*)$"))
    refused('{{ eq .a }}', "{{ eq .a }}: wrong number of args for eq: want at least 2 got 1")
    refused('{{ Replace .a "x" }}', "{{ Replace .a \"x\" }}: wrong number of args for Replace: want 4 got 2")
    refused("{{ if .a }}x{{ else }}y{{ else }}z{{ end }}", "{{ else }}: expected {{end}}")
    -- errors when it runs (the stage then leaves the value as it was, as Alloy's)
    local _, err = run('{{ if eq .a 1 }}x{{ end }}')
    assert.equals("eq: incompatible types for comparison", err)
    _, err = run("{{ with .a }}{{ .b }}{{ end }}")
    assert.equals("can't evaluate field b in type string", err)
    _, err = run('{{ regexReplaceAll "(" .a "x" }}')
    assert.matches("^regexReplaceAll: ", err)
  end)

  it("Go templates: eq and ne take a missing value (not equal to a value, equal to another missing one)", function()
    -- Go's eq compares an invalid (missing) value without an error: false against a value
    local function run(src, data)
      return gotemplate.execute(assert(gotemplate.compile(src)), data or { a = "xa" })
    end
    assert.equals("other", run('{{ if eq .level "error" }}ERR{{ else }}other{{ end }}'))
    assert.equals("true false true", run('{{ ne .level "x" }} {{ eq .a .level }} {{ eq .level .other nil }}'))
    assert.equals("true false", run('{{ eq .a "x" .level "xa" }} {{ eq .level "x" "xa" .a }}'))
    local _, err = run("{{ lt .level 1 }}")
    assert.is_string(err)
    -- the text "<no value>" (what a template printed for a missing value) is a non-empty string
    assert.equals("T true", run('{{ if .a }}T{{ end }} {{ eq .a "<no value>" }}', { a = "<no value>" }))
  end)

  it("Go templates: printf's numeric verbs take numbers only, %x of a string is its bytes in hex, as Go's fmt", function()
    -- extracted values are strings: Go's %d of one is a bad verb, not the number
    local function run(src)
      return gotemplate.execute(assert(gotemplate.compile(src)), { n = "12", s = "hi" })
    end
    assert.equals("%!d(string=12)|%!f(string=12)|%!d(bool=true)|%!d(float64=1.5)|0012",
      run('{{ printf "%d|%f|%d|%d|%04d" .n .n true 1.5 12 }}'))
    assert.equals("6869|6869|    68|0x6869|6869 |", run('{{ printf "%x|%X|%6.1x|%#x|%-5x|" .s .s .s .s .s }}'))
  end)

  it("Go templates: TrimSpace and trim remove Unicode spaces as Go's, in linear time (1 MiB of spaces within)", function()
    local sp = string.rep(" ", 1048576)
    for _, f in ipairs({ "TrimSpace", "trim" }) do
      local c = assert(gotemplate.compile("{{ " .. f .. " .a }}|"))
      assert.equals("x" .. sp .. "y|", gotemplate.execute(c, { a = "\194\160\t x" .. sp .. "y\226\128\137\227\128\128\n" }))
      assert.equals("|", gotemplate.execute(c, { a = " \194\133 " }))
      assert.equals("\194\161|", gotemplate.execute(c, { a = "\194\161" }))
    end
  end)

  it("Go templates: a missing value is <nil> to printf, print and toString; %s and %t take their kinds only", function()
    local function run(src)
      return gotemplate.execute(assert(gotemplate.compile(src)), { a = "xa" })
    end
    -- from Go 1.19's text/template with map[string]any{"a": "xa"}
    assert.equals("%!s(<nil>)|<nil>|%!d(<nil>)|%!q(<nil>)|%!t(<nil>)|%!s(int=3)|%!t(string=xa)| true|<nil> 1|<nil>\n|"
      .. "<no value>", run('{{ printf "%s|%v|%d|%q|%t|%s|%t|%5t" .missing .missing .missing .missing .missing 3 "xa" true }}|'
      .. "{{ print .missing 1 }}|{{ println .missing }}|{{ .missing }}"))
    assert.equals("<nil>|xa", run("{{ toString .missing }}|{{ toString .a }}"))
  end)

  it("Go templates: title upper-cases the letter after a separator as Go's strings.Title", function()
    local c = assert(gotemplate.compile("{{ title .a }}"))
    -- Go 1.19: strings.Title("hello_world élan it's x1y 2nd naïve-bob\u3000ok")
    assert.equals("Hello_world Élan It'S X1y 2nd Naïve-Bob\227\128\128Ok",
      gotemplate.execute(c, { a = "hello_world élan it's x1y 2nd naïve-bob\227\128\128ok" }))
  end)

  it("the MaxMind reader opens any bytes without raising, and a lookup in what it opens ends", function()
    local writer = require("helpers.mmdb_writer")
    local mmdb = require("loki.process.mmdb")
    local db = writer.build({ { "81.2.69.0/24", { city = { names = { en = "London" } }, n = { 1, 2.5, true } } },
      { "2a02:c7f::/32", { country = { iso_code = "DE" } } } })
    math.randomseed(7)
    local rng = math.random
    for _ = 1, 2000 do
      local s = db
      for _ = 1, rng(1, 4) do -- flip, drop or repeat bytes
        local i, op = rng(1, #s), rng(1, 3)
        if op == 1 then
          s = s:sub(1, i - 1) .. string.char(rng(0, 255)) .. s:sub(i + 1)
        elseif op == 2 then
          s = s:sub(1, i - 1) .. s:sub(i + rng(1, 8))
        else
          s = s:sub(1, i) .. s:sub(i, i + rng(0, 8)) .. s:sub(i + 1)
        end
      end
      local ok, r = pcall(mmdb.from_string, s, "x.mmdb")
      assert.is_true(ok, tostring(r))
      if r then -- a lookup may fail (a malformed record), in bounded time
        for _, ip in ipairs({ "81.2.69.1", "2a02:c7f::1", "1.2.3.4", "::1" }) do
          pcall(r.lookup, r, ip)
        end
      end
    end
  end)

  it("writes any number as Go's FormatFloat 'f' -1 does, reading back as itself", function()
    math.randomseed(7)
    for _ = 1, 5000 do
      local x = (math.random() - 0.5) * 10 ^ math.random(-30, 30)
      local s = values.float(x)
      assert.is_nil(s:find("e"), s)
      assert.equals(x, tonumber(s))
    end
    assert.equals("12345678901234567000", values.float(12345678901234567890))
    assert.equals("0.00000015", values.float(1.5e-7))
  end)
end)
