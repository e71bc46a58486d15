-- End-to-end: loki.process through `moonwatch run`, as users write pipelines: each case is a
-- test.logsource -> loki.process (the stages of the case) -> loki.echo file, all cases in one
-- run; the cases are Alloy's documented examples of each stage where it has them.
local proc = require("helpers.proc")

local FIXTURES = proc.source .. "/tests/lua/fixtures/components"
local tmp = proc.tmpdir()

local function slurp(path)
  local f = io.open(path, "rb")
  local s = f and f:read("*a") or ""
  if f then
    f:close()
  end
  return s
end

-- What loki.echo writes for an entry (its own spec pins the format).
local function q(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == "\n" then
      return "\\n"
    elseif c == "\t" then
      return "\\t"
    elseif c == '"' or c == "\\" then
      return "\\" .. c
    end
    return string.format("\\x%02x", c:byte())
  end) .. '"'
end
local function set(t)
  local names = {}
  for k in pairs(t) do
    names[#names + 1] = k
  end
  table.sort(names)
  for i, k in ipairs(names) do
    names[i] = k .. "=" .. string.format("%q", t[k]):gsub("\\\n", "\\n")
  end
  return "{" .. table.concat(names, ", ") .. "}"
end
local function echo(ts, labels, line, md)
  local s = string.format("ts=%s labels=%s entry=%s", ts, q(set(labels)), q(line))
  if md then
    s = s .. " structured_metadata=" .. q(set(md))
  end
  return s
end

local T0 = "2023-11-14T22:13:20.000000000Z" -- ts = 1700000000
local T1 = "2023-11-14T22:13:21.000000000Z"

-- name -> { entries = Lua text, stages = Lua text, expect = { echo lines } }
local cases = {}
local order = {}
local function case(name, c)
  cases[name] = c
  order[#order + 1] = name
end

case("json_doc", {
  entries = [[{ { labels = { job = "a" }, ts = 1700000000,
    line = '{"log":"log message\\n","extra":"{\\"user\\":\\"alloy\\"}"}' } }]],
  stages = [[
  stage.json { expressions = { output = "log", extra = "" } },
  stage.json { source = "extra", expressions = { username = "user" } },
  stage.labels { values = { username = "" } },
  stage.output { source = "output" },]],
  expect = { echo(T0, { job = "a", username = "alloy" }, "log message\n") },
})

case("json_paths", {
  entries = [[{ { labels = { job = "a" }, ts = 1700000000,
    line = '{"a":{"b":[{"c":"x"},{"c":"y"}]},"request_User-Agent":"curl","n":12.5,"ok":true,"o":{"z":1,"y":[1,"2"]}}' } }]],
  stages = [[
  stage.json { expressions = { c = "a.b[0].c", last = "a.b[-1].c", ua = '"request_User-Agent"', n = "", ok = "",
    o = "", missing = "nope.x" } },
  stage.labels { values = { c = "", last = "", ua = "", n = "", ok = "", missing = "" } },
  stage.output { source = "o" },]],
  expect = { echo(T0, { job = "a", c = "x", last = "y", ua = "curl", n = "12.5", ok = "true" }, '{"y":[1,"2"],"z":1}') },
})

case("json_edges", {
  entries = [===[{ { labels = { job = "a" }, ts = 1700000000,
    line = [==[{"dup":{"x":1},"dup":"last","a\"b":"quoted key","u":"\u00e9\ud83d\ude00","nul":null,"job":"from json",]==]
      .. [==["arr":[1,[2,{"k":"deep"}]],"big":12345678901234567890,"f":-0.5e-3}]==] } }]===],
  stages = [[
  stage.json { expressions = { dup = "", dupx = "dup.x", ab = '"a\\"b"', u = "", nul = "", deep = "arr[1][1].k",
    big = "", f = "" } },
  stage.json { expressions = { last = "arr[-1][0]" } }, -- a negative index: the decoder's path
  stage.labels { values = { dup = "", dupx = "", ab = "", u = "", nul = "", deep = "", big = "", f = "", last = "" } },]],
  expect = { echo(T0, { job = "a", dup = "last", ab = "quoted key", u = "é😀", deep = "deep",
    big = "12345678901234567000", f = "-0.0005", last = "2" },
    [==[{"dup":{"x":1},"dup":"last","a\"b":"quoted key","u":"\u00e9\ud83d\ude00","nul":null,"job":"from json",]==]
    .. [==["arr":[1,[2,{"k":"deep"}]],"big":12345678901234567890,"f":-0.5e-3}]==]) },
})

case("json_drop_malformed", {
  entries = [[{ { labels = { job = "a" }, ts = 1700000000, line = 'not json' },
    { labels = { job = "a" }, ts = 1700000001, line = '{"level":"info"}' } }]],
  stages = [[
  stage.json { expressions = { level = "" }, drop_malformed = true },
  stage.labels { values = { level = "" } },]],
  expect = { echo(T1, { job = "a", level = "info" }, '{"level":"info"}') },
})

case("logfmt_doc", {
  entries = [[{ { labels = { job = "a" }, ts = 1700000000, line = 'time=2012-11-01T22:08:41+00:00 app=loki level=WARN duration=125 '
    .. 'message="this is a log line" extra="user=example_name"' } }]],
  stages = [[
  stage.logfmt { mapping = { extra = "", lvl = "level", message = "" } },
  stage.logfmt { mapping = { username = "user" }, source = "extra" },
  stage.labels { values = { username = "", lvl = "" } },
  stage.output { source = "message" },]],
  expect = { echo(T0, { job = "a", lvl = "WARN", username = "example_name" }, "this is a log line") },
})

case("regex_doc", {
  entries = [[{ { labels = { job = "a" }, ts = 1700000000,
    line = "2019-01-01T01:00:00.000000001Z stderr P i'm a log message!" } }]],
  stages = [[
  stage.regex { expression = "^(?s)(?P<time>\\S+?) (?P<stream>stdout|stderr) (?P<flags>\\S+?) (?P<content>.*)$" },
  stage.labels { values = { stream = "", flags = "" } },
  stage.timestamp { source = "time", format = "RFC3339Nano" },
  stage.output { source = "content" },]],
  expect = { echo("2019-01-01T01:00:00.000000001Z", { job = "a", stream = "stderr", flags = "P" }, "i'm a log message!") },
})

case("regex_source", {
  entries = [[{ { labels = { job = "a" }, ts = 1700000000, line = '{"timestamp":"2022-01-01T01:00:00.000000001Z"}' } }]],
  stages = [[
  stage.json { expressions = { time = "timestamp" } },
  stage.regex { expression = "^(?P<year>\\d+)", source = "time" },
  stage.labels { values = { year = "" } },]],
  expect = { echo(T0, { job = "a", year = "2022" }, '{"timestamp":"2022-01-01T01:00:00.000000001Z"}') },
})

case("label_stages", {
  entries = [[{ { labels = { job = "a", kubernetes_node_name = "n1", kubernetes_namespace = "ns", pod = "p" },
    ts = 1700000000, line = "x" } }]],
  stages = [[
  stage.static_labels { values = { foo = "fooval", bar = "barval" } },
  stage.label_drop { values = { "kubernetes_node_name", "kubernetes_namespace" } },
  stage.label_keep { values = { "job", "foo", "bar" } },]],
  expect = { echo(T0, { job = "a", foo = "fooval", bar = "barval" }, "x") },
})

case("docker_doc", {
  entries = [=[{ { labels = { job = "a" }, ts = 1700000000,
    line = [[{"log":"log message\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}]] },
    { labels = { job = "a" }, ts = 1700000000, line = "not docker" } }]=],
  stages = [[
  stage.docker {},
  stage.template { source = "x", template = "{{ .stream }} {{ .timestamp }} {{ .output }}" },
  stage.structured_metadata { values = { x = "" } },]],
  expect = {
    echo("2019-04-30T02:12:41.844351500Z", { job = "a", stream = "stderr" }, "log message\n",
      { x = "stderr 2019-04-30T02:12:41.8443515Z log message\n" }),
    echo(T0, { job = "a" }, "not docker", { x = "<no value> <no value> <no value>" }),
  },
})

case("cri_doc", {
  entries = [[{
    { labels = { job = "a" }, ts = 1700000000, line = "2019-04-30T02:12:41.8443515Z stdout F message" },
    { labels = { job = "a" }, ts = 1700000000, line = "2019-04-30T02:12:42.0Z stderr P part one, " },
    { labels = { job = "a" }, ts = 1700000000, line = "2019-04-30T02:12:43.0Z stdout F full" },
    { labels = { job = "a" }, ts = 1700000000, line = "2019-04-30T02:12:44.0Z stderr P part two, " },
    { labels = { job = "a" }, ts = 1700000000, line = "2019-04-30T02:12:45.0Z  stderr  F end" },
    { labels = { job = "a" }, ts = 1700000000, line = "not cri" },
  }]],
  stages = [[
  stage.cri {},
  stage.template { source = "x", template = "{{ .flags }}|{{ .content }}" },
  stage.structured_metadata { values = { x = "" } },]],
  expect = {
    echo("2019-04-30T02:12:41.844351500Z", { job = "a", stream = "stdout" }, "message", { x = "F|message" }),
    echo("2019-04-30T02:12:43.000000000Z", { job = "a", stream = "stdout" }, "full", { x = "F|full" }),
    echo("2019-04-30T02:12:45.000000000Z", { job = "a", stream = "stderr" }, "part one, part two, end",
      { x = "F|end" }), -- the partial lines joined to the full one, with its timestamp (as Alloy's)
    echo(T0, { job = "a" }, "not cri", { x = "<no value>|<no value>" }),
  },
})

case("labels_invalid_utf8", {
  entries = [[{ { labels = { job = "a" }, ts = 1700000000, line = "ok=yes bad=\255\254" } }]],
  stages = [[
  stage.logfmt { mapping = { ok = "", bad = "" } },
  stage.labels { values = { ok = "", bad = "" } },]],
  expect = { echo(T0, { job = "a", ok = "yes" }, "ok=yes bad=\255\254") }, -- bad: not UTF-8, skipped as Alloy
})

case("timestamp_formats", {
  entries = [[{
    { labels = { f = "custom" }, ts = 1700000000, line = "2024-12-20T09:14:58,381+02:00" },
    { labels = { f = "unix" }, ts = 1700000000, line = "1562708916.000000123" },
    { labels = { f = "unixms" }, ts = 1700000000, line = "1562708916414" },
    { labels = { f = "located" }, ts = 1700000000, line = "2023-06-01 12:00:00" },
    { labels = { f = "fallback" }, ts = 1700000000, line = "Nov 14 2023 10:00:00" },
  }]],
  stages = [[
  stage.regex { expression = "^(?P<t>.*)$" },
  stage.match { selector = '{f="custom"}', stage.timestamp { source = "t", format = "2006-01-02T15:04:05,000-07:00" } },
  stage.match { selector = '{f="unix"}', stage.timestamp { source = "t", format = "Unix" } },
  stage.match { selector = '{f="unixms"}', stage.timestamp { source = "t", format = "UnixMs" } },
  stage.match { selector = '{f="located"}',
    stage.timestamp { source = "t", format = "2006-01-02 15:04:05", location = "Europe/Paris" } },
  stage.match { selector = '{f="fallback"}',
    stage.timestamp { source = "t", format = "RFC3339", fallback_formats = { "Jan 2 2006 15:04:05" } } },]],
  expect = { -- in timestamp order: stage.match sorts what its branches give back, as Alloy's
    echo("2019-07-09T21:48:36.000000123Z", { f = "unix" }, "1562708916.000000123"),
    echo("2019-07-09T21:48:36.414000000Z", { f = "unixms" }, "1562708916414"),
    echo("2023-06-01T10:00:00.000000000Z", { f = "located" }, "2023-06-01 12:00:00"),
    echo("2023-11-14T10:00:00.000000000Z", { f = "fallback" }, "Nov 14 2023 10:00:00"),
    echo("2024-12-20T07:14:58.381000000Z", { f = "custom" }, "2024-12-20T09:14:58,381+02:00"),
  },
})

case("timestamp_failure", {
  entries = [[{
    { labels = { a = "fudge" }, ts = 1700000000, line = "2020-01-01T00:00:00Z" },
    { labels = { a = "fudge" }, ts = 1700000001, line = "garbage" },
    { labels = { a = "skip" }, ts = 1700000000, line = "2020-01-01T00:00:00Z" },
    { labels = { a = "skip" }, ts = 1700000001, line = "garbage" },
  }]],
  stages = [[
  stage.regex { expression = "^(?P<t>.*)$" },
  stage.match { selector = '{a="fudge"}', stage.timestamp { source = "t", format = "RFC3339" } },
  stage.match { selector = '{a="skip"}', stage.timestamp { source = "t", format = "RFC3339", action_on_failure = "skip" } },]],
  expect = { -- in timestamp order (stage.match)
    echo("2020-01-01T00:00:00.000000000Z", { a = "fudge" }, "2020-01-01T00:00:00Z"),
    echo("2020-01-01T00:00:00.000000000Z", { a = "skip" }, "2020-01-01T00:00:00Z"),
    echo("2020-01-01T00:00:00.000000001Z", { a = "fudge" }, "garbage"),
    echo(T1, { a = "skip" }, "garbage"),
  },
})

case("output_doc", {
  entries = [[{ { labels = {}, ts = 1700000000, line = '{"user": "John Doe", "message": "hello, world!"}' } }]],
  stages = [[
  stage.json { expressions = { user = "user", message = "message" } },
  stage.labels { values = { user = "user" } },
  stage.output { source = "message" },]],
  expect = { echo(T0, { user = "John Doe" }, "hello, world!") },
})

case("drop_doc", {
  entries = [[{
    { labels = { n = "1" }, ts = 1700000000, line = "a debug line " .. string.rep("x", 1100) },
    { labels = { n = "2" }, ts = 1700000000, line = "a short debug line" },
    { labels = { n = "3" }, ts = 1700000000, line = "a long info line " .. string.rep("x", 1100) },
    { labels = { n = "4" }, ts = 1000000000, line = "too old" },
    { labels = { n = "5" }, ts = 1700000000, line = string.rep("y", 9000) },
    { labels = { n = "6", app = "example" }, ts = 1700000000, line = "app example" },
    { labels = { n = "7", app = "other" }, ts = 1700000000, line = "app other" },
    { labels = { n = "8", app = "x", env = "dev" }, ts = 1700000000, line = "joined sources" },
    { labels = { n = "9", app = "x" }, ts = 1700000000, line = "only one source" },
    { labels = { n = "10", level = "debug" }, ts = 1700000000, line = "a source alone" },
  }]],
  stages = [[
  stage.drop { expression = ".*debug.*", longer_than = "1KB" },
  stage.drop { older_than = "87600h", drop_counter_reason = "too old" }, -- Alloy's example says 24h
  stage.drop { longer_than = "8KB", drop_counter_reason = "too long" },
  stage.drop { source = "app", value = "example" },
  stage.drop { source = "app,env", expression = "^x;dev$", drop_counter_reason = "joined" },
  stage.drop { source = "level", drop_counter_reason = "has level" },]],
  expect = {
    echo(T0, { n = "2" }, "a short debug line"),
    echo(T0, { n = "3" }, "a long info line " .. string.rep("x", 1100)),
    echo(T0, { n = "7", app = "other" }, "app other"),
    echo(T0, { n = "9", app = "x" }, "only one source"),
  },
})

case("match_doc", {
  entries = [[{
    { labels = {}, ts = 1700000000, line = '{ "time":"2023-01-18T17:08:41+00:00", "app":"examplelabel", "component": ["parser","type"], "level" : "WARN", "message" : "app1 log line" }' },
    { labels = {}, ts = 1700000001, line = '{ "time":"2023-01-18T17:08:42+00:00", "app":"bar", "component": ["parser","type"], "level" : "ERROR", "message" : "example noisy error" }' },
    { labels = {}, ts = 1700000001, line = '{ "app":"bar", "message" : "a quiet one" }' },
  }]],
  stages = [[
  stage.json { expressions = { appname = "app" } },
  stage.labels { values = { applbl = "appname" } },
  stage.match { selector = '{applbl="examplelabel"}', stage.json { expressions = { msg = "message" } } },
  stage.match { selector = '{applbl="qux"}', stage.json { expressions = { msg = "msg" } } },
  stage.match { selector = '{applbl="bar"} |~ ".*noisy error.*"', action = "drop",
    drop_counter_reason = "discard_noisy_errors" },
  stage.match { selector = '{applbl=~"ba."} != "noisy"', stage.static_labels { values = { quiet = "yes" } } },
  stage.output { source = "msg" },]],
  expect = {
    echo(T0, { applbl = "examplelabel" }, "app1 log line"),
    echo(T1, { applbl = "bar", quiet = "yes" }, '{ "app":"bar", "message" : "a quiet one" }'),
  },
})

case("template_doc", {
  entries = [[{ { labels = {}, ts = 1700000000, line = "level=info app=MyApp module=db loki loki loki" } }]],
  stages = [[
  stage.logfmt { mapping = { level = "", app = "", module = "" } },
  stage.template { source = "new_key", template = "hello_world" },
  stage.template { source = "lower_app", template = "{{ ToLower .app }}_some_suffix" },
  stage.template { source = "output_msg", template = "{{ .level }} for app {{ ToUpper .app }} in module {{.module}}" },
  stage.template { source = "msg", template = "{{ .app }}: {{ .Entry }}" },
  stage.template { source = "msg", template = '{{ Replace .Value "loki" "Loki" 2 }}' },
  stage.template { source = "piped", template = "{{ .app | ToUpper }}" },
  stage.labels { values = { new_key = "", lower_app = "", piped = "" } },
  stage.structured_metadata { values = { output_msg = "" } },
  stage.output { source = "msg" },]],
  expect = { echo(T0, { new_key = "hello_world", lower_app = "myapp_some_suffix", piped = "MYAPP" },
    "MyApp: level=info app=MyApp module=db Loki Loki loki", { output_msg = "info for app MYAPP in module db" }) },
})

-- Alloy's documented `if eq` example, and the rest of Go's template language and functions
-- users write: else if, with (the dot becomes the value), comparisons, and/or/not, printf,
-- Alloy's Hash (SHA3-256) and Sha2Hash (SHA-256) of salt .. input, regexReplaceAll with $1,
-- sprig's string functions.
case("template_control", {
  entries = [[{
    { labels = {}, ts = 1700000000, line = "level=WARN user=frank took=1500 path=/api/v1/users/42" },
    { labels = {}, ts = 1700000001, line = "level=info user= took=20 path=/healthz" },
  }]],
  stages = [[
  stage.logfmt { mapping = { level = "", user = "", took = "", path = "" } },
  stage.template { source = "level", template = '{{ if eq .Value "WARN" }}{{ Replace .Value "WARN" "OK" -1 }}{{ else }}{{ .Value }}{{ end }}' },
  stage.template { source = "who", template = '{{ with .user }}user {{ . }}{{ else }}anonymous{{ end }}' },
  stage.template { source = "speed", template = '{{ if gt (len .took) 3 }}slow{{ else if and (eq .level "info") (not (eq .path "/")) }}fine{{ else }}?{{ end }}' },
  stage.template { source = "route", template = '{{ regexReplaceAll "/[0-9]+" .path "/:id" | trimPrefix "/api" }}' },
  stage.template { source = "h", template = '{{ if hasPrefix "/api" .path }}{{ Hash "WARN" "salt" | trunc 8 }}-{{ Sha2Hash "salt" "WARN" | trunc 8 }}{{ end }}' },
  stage.template { source = "line", template = '{{ printf "%s/%-4s|%q" .who .speed .route }} {{ .h | default "none" | upper }}' },
  stage.labels { values = { level = "", route = "" } },
  stage.output { source = "line" },]],
  expect = {
    echo(T0, { level = "OK", route = "/v1/users/:id" }, 'user frank/slow|"/v1/users/:id" 2A32A3D4-1D6CE292'),
    echo(T1, { level = "info", route = "/healthz" }, 'anonymous/fine|"/healthz" NONE'),
  },
})

case("multiline_doc", {
  entries = [[{
    { labels = { app = "flask" }, ts = 1699999999, line = "before the first block: passes through" },
    { labels = { app = "flask" }, ts = 1700000000, line = '[2023-01-18 17:41:21] "GET /hello HTTP/1.1" 200 -' },
    { labels = { app = "flask" }, ts = 1700000001, line = "[2023-01-18 17:41:25] ERROR in app: Exception on /error [GET]" },
    { labels = { app = "flask" }, ts = 1700000001, line = "Traceback (most recent call last):" },
    { labels = { app = "flask" }, ts = 1700000001, line = '  File "/home/pallets/app.py", line 2447, in wsgi_app' },
    { labels = { app = "flask" }, ts = 1700000001, line = "Exception: Sorry, this route always breaks" },
    { labels = { app = "flask" }, ts = 1700000001, line = '[2023-01-18 17:42:24] "GET /error HTTP/1.1" 500 -' },
  }]],
  stages = [[
  stage.multiline { firstline = "^\\[\\d{4}-\\d{2}-\\d{2} \\d{1,2}:\\d{2}:\\d{2}\\]", max_wait_time = "300ms" },]],
  expect = {
    echo("2023-11-14T22:13:19.000000000Z", { app = "flask" }, "before the first block: passes through"),
    echo(T0, { app = "flask" }, '[2023-01-18 17:41:21] "GET /hello HTTP/1.1" 200 -'),
    echo(T1, { app = "flask" }, "[2023-01-18 17:41:25] ERROR in app: Exception on /error [GET]\n"
      .. "Traceback (most recent call last):\n"
      .. '  File "/home/pallets/app.py", line 2447, in wsgi_app\n'
      .. "Exception: Sorry, this route always breaks"),
    echo(T1, { app = "flask" }, '[2023-01-18 17:42:24] "GET /error HTTP/1.1" 500 -'), -- flushed after max_wait_time
  },
})

case("multiline_max_lines", {
  entries = [[{
    { labels = { app = "x" }, ts = 1700000000, line = "start" },
    { labels = { app = "x" }, ts = 1700000001, line = " a" },
    { labels = { app = "x" }, ts = 1700000001, line = " b" },
    { labels = { app = "x" }, ts = 1700000001, line = " c" },
  }]],
  stages = [[
  stage.multiline { firstline = "^start", max_lines = 2, max_wait_time = "300ms" },]],
  expect = {
    echo(T0, { app = "x" }, "start\n a"),
    echo(T0, { app = "x" }, " b\n c"), -- the lines after max_lines: a block with the same start
  },
})

case("limit_drop", {
  entries = [[{
    { labels = { namespace = "a" }, ts = 1700000000, line = "1" },
    { labels = { namespace = "a" }, ts = 1700000000, line = "2" },
    { labels = { namespace = "a" }, ts = 1700000000, line = "3" },
    { labels = { namespace = "b" }, ts = 1700000000, line = "4" },
    { labels = {}, ts = 1700000000, line = "5" },
  }]],
  stages = [[
  stage.limit { rate = 0.001, burst = 2, drop = true, by_label_name = "namespace" },]],
  expect = {
    echo(T0, { namespace = "a" }, "1"),
    echo(T0, { namespace = "a" }, "2"),
    echo(T0, { namespace = "b" }, "4"),
    echo(T0, {}, "5"),
  },
})

case("limit_wait", {
  entries = [[{
    { labels = {}, ts = 1700000000, line = "1" },
    { labels = {}, ts = 1700000000, line = "2" },
    { labels = {}, ts = 1700000000, line = "3" },
  }]],
  stages = [[
  stage.limit { rate = 5, burst = 1 },
  stage.static_labels { values = { after = "limit" } },]],
  expect = {
    echo(T0, { after = "limit" }, "1"),
    echo(T0, { after = "limit" }, "2"),
    echo(T0, { after = "limit" }, "3"),
  },
})

case("tenant_and_metadata", {
  entries = [[{ { labels = { job = "a" }, ts = 1700000000, line = '{"customer_id":"team-b","trace":"abc"}' } }]],
  stages = [[
  stage.json { expressions = { customer_id = "", trace = "" } },
  stage.tenant { source = "customer_id" },
  stage.structured_metadata { values = { trace_id = "trace" } },]],
  expect = { echo(T0, { job = "a", __tenant_id__ = "team-b" }, '{"customer_id":"team-b","trace":"abc"}',
    { trace_id = "abc" }) },
})

case("replace_decolorize", {
  entries = [[{ { labels = {}, ts = 1700000000,
    line = "\27[0;32mhttp\27[0m: 11.11.11.11 - frank [01/Jan/2023:00:00:01 +0200] password xyz!" } }]],
  stages = [[
  stage.decolorize {},
  stage.replace { expression = "password (\\S+)", replace = "*****" },
  stage.replace { expression = "(?P<user>frank)", replace = "{{ .Value | ToUpper }}" },
  stage.labels { values = { user = "" } },]],
  expect = { echo(T0, { user = "FRANK" }, "http: 11.11.11.11 - FRANK [01/Jan/2023:00:00:01 +0200] password *****") },
})

case("line_too_long", {
  entries = [[{ { labels = {}, ts = 1700000000, line = "grow" }, { labels = {}, ts = 1700000000, line = "keep" } }]],
  stages = [[
  stage.lua { fn = function(e)
    if e.line == "grow" then
      e.line = string.rep("x", 64 * 1024 * 1024 + 1) -- more than a batch takes
    end
  end },]],
  expect = { echo(T0, {}, "keep") },
})

case("lua_stage", {
  entries = [[{
    { labels = { job = "a" }, ts = 1700000000, line = "GET /api 200 12ms" },
    { labels = { job = "a" }, ts = 1700000000, line = "debug: noise" },
    { labels = { job = "a" }, ts = 1700000001, line = "POST /api 500 40ms" },
  }]],
  stages = [[
  stage.regex { expression = "^(?P<method>\\S+) \\S+ (?P<status>\\d+)" },
  stage.lua { fn = function(e)
    if e.line:find("^debug") then
      return false
    end
    e.labels.class = e.extracted.status:sub(1, 1) .. "xx"
    e.line = e.line:lower()
    e.metadata.method = e.extracted.method
    e.sec = e.sec + 60
  end },
  stage.lua { fn = function(e)
    if e.labels.class == "5xx" then
      error("boom")
    end
    e.line = e.line .. " ok"
  end },]],
  expect = {
    echo("2023-11-14T22:14:20.000000000Z", { job = "a", class = "2xx" }, "get /api 200 12ms ok", { method = "GET" }),
    echo("2023-11-14T22:14:21.000000000Z", { job = "a", class = "5xx" }, "post /api 500 40ms", { method = "POST" }),
  },
})

case("metrics_doc", {
  entries = [[{
    { labels = { job = "a" }, ts = 1700000000, line = "x order_status=success retries=3 response_time=0.004 " },
    { labels = { job = "a" }, ts = 1700000000, line = "x order_status=fail retries=2 response_time=0.5ms " },
    { labels = { job = "b", env = "dev" }, ts = 1700000000, line = "x order_status=success retries=1 response_time=2 " },
  }]],
  stages = [[
  stage.metrics {
    metric.counter { name = "log_lines_total", description = "total number of log lines",
      prefix = "my_custom_tracking_", match_all = true, action = "inc", max_idle_duration = "24h" },
    metric.counter { name = "log_bytes_total", description = "total bytes of log lines",
      prefix = "my_custom_tracking_", match_all = true, count_entry_bytes = true, action = "add" },
  },
  stage.regex { expression = "^.* order_status=(?P<order_status>.*?) .*$" },
  stage.metrics {
    metric.counter { name = "successful_orders_total", description = "successful orders", source = "order_status",
      value = "success", action = "inc" },
    metric.counter { name = "failed_orders_total", description = "failed orders", source = "order_status",
      value = "fail", action = "inc" },
  },
  stage.regex { expression = "^.* retries=(?P<retries>\\d+) .*$" },
  stage.metrics { metric.gauge { name = "retries_total", description = "total_retries", source = "retries",
    action = "add" } },
  stage.regex { expression = "response_time=(?P<response_time>\\S+)" },
  stage.metrics { metric.histogram { name = "http_response_time_seconds", description = "recorded response times",
    source = "response_time", buckets = { 0.001, 0.0025, 0.005, 0.010, 0.025, 0.050 } } },
  stage.drop { expression = "." },]],
  expect = {},
})

local function lines_of(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do
    out[#out + 1] = l
  end
  return out
end

describe("loki.process", function()
  local outputs, metrics_text, logs_text, component_text = {}, "", "", ""

  setup(function()
    local parts = {}
    for i, name in ipairs(order) do
      local c = cases[name]
      parts[#parts + 1] = string.format("test.logsource %q {\n  entries = %s,\n  forward_to = { loki.process.%s.receiver },\n}\n",
        name, c.entries, name)
      parts[#parts + 1] = string.format("loki.process %q {\n  forward_to = { loki.echo.%s.receiver },\n%s\n}\n", name,
        name, c.stages)
      parts[#parts + 1] = string.format("loki.echo %q { file = %q }\n", name, tmp .. "/out/" .. name .. ".log")
      local _ = i
    end
    local f = proc.write(tmp .. "/process.lua", table.concat(parts))
    local code, _, err = proc.run({ "check", "--component.path=" .. FIXTURES, f })
    assert(code == 0, "check failed: " .. tostring(err))
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES })
    local deadline = os.time() + 15
    repeat
      local done = true
      for _, name in ipairs(order) do
        if #lines_of(slurp(tmp .. "/out/" .. name .. ".log")) < #cases[name].expect then
          done = false
        end
      end
      if not done then
        os.execute("sleep 0.1")
      end
    until done or os.time() > deadline
    local _, body = proc.http("GET", h.base .. "/metrics")
    metrics_text = body
    _, component_text = proc.http("GET", h.base .. "/api/v0/components/loki.process.drop_doc")
    h.kill()
    h.wait(10)
    logs_text = h.read()
    for _, name in ipairs(order) do
      outputs[name] = lines_of(slurp(tmp .. "/out/" .. name .. ".log"))
    end
  end)

  for _, name in ipairs(order) do
    it("stage case " .. name, function()
      assert.same(cases[name].expect, outputs[name])
    end)
  end

  it("is healthy, with what it received, forwarded and dropped in its debug info", function()
    local c = require("cjson").decode(component_text)
    assert.equals("healthy", c.health.state)
    assert.same({ entries_received = 10, entries_forwarded = 4,
      entries_dropped = { drop_stage = 2, ["too old"] = 1, ["too long"] = 1, joined = 1, ["has level"] = 1 } },
      c.debug_info)
  end)

  it("counts dropped lines by reason in loki_process_dropped_lines_total", function()
    local function count(id, reason)
      local v = metrics_text:match('loki_process_dropped_lines_total{component_id="loki%.process%.' .. id
        .. '",reason="' .. reason:gsub("%p", "%%%0") .. '"} (%S+)')
      return tonumber(v)
    end
    assert.equals(2, count("drop_doc", "drop_stage")) -- expression and longer_than; source and value
    assert.equals(1, count("drop_doc", "too old"))
    assert.equals(1, count("drop_doc", "too long"))
    assert.equals(1, count("drop_doc", "joined"))
    assert.equals(1, count("drop_doc", "has level"))
    assert.equals(1, count("match_doc", "discard_noisy_errors"))
    assert.equals(1, count("json_drop_malformed", "malformed_json"))
    assert.equals(1, count("lua_stage", "lua_stage"))
    assert.equals(1, count("limit_drop", "ratelimit_drop_stage"))
    assert.equals(1, count("line_too_long", "line_too_long"))
    assert.matches('loki_process_dropped_lines_by_label_total{component_id="loki.process.limit_drop",'
      .. 'label_name="namespace",label_value="a"} 1', metrics_text, 1, true)
  end)

  it("refuses a misspelled stage or argument and unsupported expressions with file:line at check time", function()
    local f = proc.write(tmp .. "/bad.lua", [[
loki.process "p" {
  forward_to = { loki.echo.e.receiver },
  stage.jsn { expressions = { level = "" } },
  stage.labels { valuez = { level = "" } },
  stage.json { expressions = { a = "x[*].y" } },
  stage.match { selector = '{job="app"} | json', stage.drop { source = "x" } },
  stage.match { selector = '{job="app"}',
    stage.drop {},
  },
  stage.template { source = "a", template = "{{ range .a }}x{{ end }}" },
  stage.timestamp { source = "t", format = "RFC3339", location = "Mars/Olympus" },
  stage.limit { rate = 1, burst = 1, by_label_name = "x" },
}
loki.echo "e" {}
]])
    local code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    local expect = {
      ':3: loki.process "p": stage.jsn: unknown stage (did you mean stage.json?)',
      ':4: loki.process "p": stage.labels.valuez: unknown argument (did you mean "values"?)',
      ':5: loki.process "p": stage.json: expressions["a"]: unsupported JMESPath at offset 1 ("[*].y")',
      ':6: loki.process "p": stage.match.selector: invalid selector: unsupported at offset 12 ("| json")',
      ':8: loki.process "p": stage.drop: needs at least one of source, expression, older_than or longer_than',
      ':10: loki.process "p": stage.template: template: {{ range .a }}: {{ range }} is not supported '
        .. '(if, else, with and end are)',
      ':11: loki.process "p": stage.timestamp: location: unknown time zone "Mars/Olympus"',
      ':12: loki.process "p": stage.limit: by_label_name needs drop = true',
    }
    for _, e in ipairs(expect) do
      assert.matches(f .. e, err, 1, true)
    end
  end)

  it("exposes stage.metrics counters, gauges and histograms on /metrics with the entries' labels", function()
    local function has(line)
      assert.matches(line, metrics_text, 1, true)
    end
    local a = 'component_id="loki.process.metrics_doc",env="",job="a"'
    local b = 'component_id="loki.process.metrics_doc",env="dev",job="b"'
    has("# HELP my_custom_tracking_log_lines_total total number of log lines")
    has("# TYPE my_custom_tracking_log_lines_total counter")
    has("my_custom_tracking_log_lines_total{" .. a .. "} 2")
    has("my_custom_tracking_log_lines_total{" .. b .. "} 1")
    has("my_custom_tracking_log_bytes_total{" .. a .. "} 103")
    has("loki_process_custom_successful_orders_total{" .. a .. "} 1")
    has("loki_process_custom_successful_orders_total{" .. b .. "} 1")
    has("loki_process_custom_failed_orders_total{" .. a .. "} 1")
    has("# TYPE loki_process_custom_retries_total gauge")
    has("loki_process_custom_retries_total{" .. a .. "} 5")
    has("# TYPE loki_process_custom_http_response_time_seconds histogram")
    has("loki_process_custom_http_response_time_seconds_bucket{" .. a .. ',le="0.001"} 1') -- 0.5ms
    has("loki_process_custom_http_response_time_seconds_bucket{" .. a .. ',le="0.005"} 2')
    has("loki_process_custom_http_response_time_seconds_count{" .. b .. "} 1")
    has("loki_process_custom_http_response_time_seconds_sum{" .. b .. "} 2")
  end)

  it("stops a stage.lua function at the pipeline-function time budget; the entries left go on unchanged", function()
    local out = tmp .. "/loop.log"
    local f = proc.write(tmp .. "/loop.lua", string.format([[
test.logsource "s" {
  entries = { { labels = { job = "a" }, ts = 1700000000, line = "one" },
    { labels = { job = "a" }, ts = 1700000000, line = "loop" },
    { labels = { job = "a" }, ts = 1700000000, line = "three" } },
  forward_to = { loki.process.p.receiver },
}
loki.process "p" {
  forward_to = { loki.echo.e.receiver },
  stage.lua { fn = function(e)
    e.line = e.line .. "!"
    if e.line == "loop!" then
      while true do end
    end
  end },
}
loki.echo "e" { file = %q }
]], out))
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES, "--pipeline.eval-timeout=300ms" })
    local deadline = os.time() + 10
    while #lines_of(slurp(out)) < 3 and os.time() < deadline do
      os.execute("sleep 0.05")
    end
    h.kill()
    h.wait(10)
    assert.same({ echo(T0, { job = "a" }, "one!"), echo(T0, { job = "a" }, "loop"), echo(T0, { job = "a" }, "three") },
      lines_of(slurp(out)))
    assert.matches('stage.lua function took too long; the entries left in this batch go on unchanged" entries=2 '
      .. 'err="' .. f .. ':12: evaluation took longer than 300ms"', h.read(), 1, true)
  end)

  it("sends on the entries a stage holds when its configuration changes and when it stops", function()
    local out = tmp .. "/held.log"
    local function pipeline(max_lines)
      return string.format([[
test.logsource "s" {
  entries = { { labels = { job = "a" }, ts = 1700000000, line = "first" },
    { labels = { job = "a" }, ts = 1700000000, line = "  more" } },
  forward_to = { loki.process.p.receiver },
}
loki.process "p" {
  forward_to = { loki.echo.e.receiver },
  stage.multiline { firstline = "^\\S", max_wait_time = "1h", max_lines = %d },
}
loki.echo "e" { file = %q }
]], max_lines, out)
    end
    local f = proc.write(tmp .. "/held.lua", pipeline(100))
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES })
    os.execute("sleep 0.3")
    assert.equals("", slurp(out)) -- the block waits for more lines
    proc.write(f, pipeline(50))
    local status = proc.http("POST", h.base .. "/-/reload")
    assert.equals(200, status)
    local deadline = os.time() + 10
    while #lines_of(slurp(out)) < 1 and os.time() < deadline do
      os.execute("sleep 0.05")
    end
    h.kill()
    assert.equals(0, h.wait(10))
    local block = echo(T0, { job = "a" }, "first\n  more")
    assert.same({ block }, lines_of(slurp(out))) -- sent once at the reload, not again at the stop

    -- and at a stop
    os.remove(out)
    h = proc.start_run(f, { "--component.path=" .. FIXTURES })
    os.execute("sleep 0.3")
    assert.equals("", slurp(out))
    h.kill()
    assert.equals(0, h.wait(10))
    assert.same({ block }, lines_of(slurp(out)))
  end)

  it("documents every stage and metric with its arguments (moonwatch doc loki.process)", function()
    local code, out = proc.run({ "doc", "loki.process" })
    assert.equals(0, code)
    for _, st in ipairs({ "docker", "cri", "json", "logfmt", "regex", "replace", "labels", "static_labels",
      "label_drop", "label_keep", "structured_metadata", "structured_metadata_drop", "tenant", "output", "template",
      "decolorize", "timestamp", "drop", "sampling", "truncate", "split_json", "pattern", "luhn", "eventlogmessage",
      "geoip", "match", "limit", "multiline", "metrics", "lua" }) do
      assert.matches("### stage." .. st .. "\n", out)
    end
    for _, m in ipairs({ "counter", "gauge", "histogram" }) do
      assert.matches("### metric." .. m .. "\n", out)
    end
    assert.matches("| `action_on_failure` | string | fudge: the stream's last timestamp plus 1ns; skip: keep the entry's "
      .. 'timestamp. | "fudge" | no |', out, 1, true)
    assert.matches('| `max_idle_duration` | duration | A series not updated for this long is removed. At least 1s. | 5m | no |',
      out, 1, true)
  end)

  it("removes a stage.metrics series not updated for max_idle_duration", function()
    local f = proc.write(tmp .. "/idle.lua", [[
test.logsource "s" {
  entries = { { labels = { job = "idle" }, ts = 1700000000, line = "x" } },
  forward_to = { loki.process.p.receiver },
}
loki.process "p" {
  forward_to = {},
  stage.metrics { metric.counter { name = "idle_lines_total", match_all = true, action = "inc",
    max_idle_duration = "1s" } },
}
]])
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES })
    local series = 'loki_process_custom_idle_lines_total{component_id="loki.process.p",job="idle"} 1'
    local _, body, deadline = nil, "", os.time() + 10
    while not body:find(series, 1, true) and os.time() < deadline do
      _, body = proc.http("GET", h.base .. "/metrics")
      os.execute("sleep 0.05")
    end
    assert.matches(series, body, 1, true)
    os.execute("sleep 2.3")
    _, body = proc.http("GET", h.base .. "/metrics")
    h.kill()
    h.wait(10)
    assert.is_nil(body:find(series, 1, true))
  end)

  it("sends on at a stop the entries stage.limit holds back (no drop)", function()
    local out = tmp .. "/limit-held.log"
    local f = proc.write(tmp .. "/limit-held.lua", string.format([[
test.logsource "s" {
  entries = { { labels = {}, ts = 1700000000, line = "1" }, { labels = {}, ts = 1700000000, line = "2" },
    { labels = {}, ts = 1700000000, line = "3" } },
  forward_to = { loki.process.p.receiver },
}
loki.process "p" {
  forward_to = { loki.echo.e.receiver },
  stage.limit { rate = 0.001, burst = 1 },
}
loki.echo "e" { file = %q }
]], out))
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES })
    local deadline = os.time() + 10
    while #lines_of(slurp(out)) < 1 and os.time() < deadline do
      os.execute("sleep 0.05")
    end
    os.execute("sleep 0.3")
    assert.same({ echo(T0, {}, "1") }, lines_of(slurp(out))) -- the others wait for tokens
    h.kill()
    assert.equals(0, h.wait(10))
    assert.same({ echo(T0, {}, "1"), echo(T0, {}, "2"), echo(T0, {}, "3") }, lines_of(slurp(out)))
  end)

  it("logs a failing stage.lua function and keeps the entry as it was", function()
    assert.matches("stage.lua function failed", logs_text, 1, true)
    assert.matches("boom", logs_text, 1, true)
  end)
end)
