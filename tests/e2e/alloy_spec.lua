-- Alloy configuration files through the binary: every example of the reference documents
-- (their ```alloy blocks, placeholders filled in) passes `moonwatch check`, converts with
-- `moonwatch convert`, and the converted Lua passes `check` too; an .alloy file and its
-- conversion run as the same graph (components and their arguments in the debug API); the
-- prometheus.exporter.self example runs unchanged and delivers its samples to
-- VictoriaMetrics; problems name file:line:col, unknown components all at once.
local proc = require("helpers.proc")
local rw = require("helpers.rw_e2e")
local cjson = require("cjson")

local SRC = proc.source
local FIXTURES = SRC .. "/tests/e2e/fixtures/alloy"
local tmp = proc.tmpdir()

-- The ```alloy blocks of a markdown-ish text, in order.
local function alloy_blocks(text)
  local out = {}
  for block in text:gmatch("```alloy\n(.-)```") do
    out[#out + 1] = block
  end
  return out
end

local function strip(s)
  return (s:gsub("[ \t]+", " "):gsub("\n ", "\n"):gsub("^ ", ""))
end

-- Placeholders of the documents -> values (text substituted as is).
local PLACEHOLDERS = {
  ["<LABEL>"] = "default", ["<SELF_LABEL>"] = "default", ["<SCRAPE_LABEL>"] = "default",
  ["<PROMETHEUS_REMOTE_WRITE_URL>"] = "http://127.0.0.1:9/api/v1/write",
  ["<USERNAME>"] = "user", ["<PASSWORD>"] = "pass",
  ["<TARGET_LIST>"] = '[{"__address__" = "127.0.0.1:9100"}]',
  ["<RECEIVER_LIST>"] = "[prometheus.remote_write.default.receiver]",
  ["<METRICS_RECEIVER_LIST>"] = "prometheus.remote_write.default.receiver",
  ["<LOGS_RECEIVER_LIST>"] = "loki.write.default.receiver",
  ["<TRACES_RECEIVER_LIST>"] = "",
  ["<LOG_LEVEL>"] = "info", ["<LOG_FORMAT>"] = "logfmt", ["<SAMPLING_FRACTION>"] = "0.1",
}

-- The documents' elisions: a `...` line stands for the required arguments.
local ELIDED = '  targets = [{"__address__" = "127.0.0.1:9100"}]\n  forward_to = []\n'

-- A fragment that refers to components it does not declare (the document declares them
-- elsewhere) gets minimal declarations of them appended; a prometheus.scrape without
-- targets/forward_to (the kubelet authentication fragment) gets them.
local function complete(src)
  src = src:gsub("<[%u_]+>", function(p)
    return assert(PLACEHOLDERS[p], "unknown placeholder " .. p)
  end)
  src = src:gsub("\n%s*%.%.%.\n", "\n" .. ELIDED)
  local declared = {}
  for name, label in src:gmatch('\n?([%a_][%w_.]*) "([%w_]+)" {') do
    declared[name .. "." .. label] = true
  end
  local extra = {}
  local function need(id, decl)
    if not declared[id] then
      declared[id] = true
      extra[#extra + 1] = decl
    end
  end
  for label in src:gmatch("prometheus%.remote_write%.([%w_]+)%.receiver") do
    need("prometheus.remote_write." .. label, string.format('prometheus.remote_write %q {\n  endpoint {\n    url = '
      .. '"http://127.0.0.1:9/api/v1/write"\n  }\n}', label))
  end
  for label in src:gmatch("loki%.write%.([%w_]+)%.receiver") do
    need("loki.write." .. label, string.format('loki.write %q {\n  endpoint {\n    url = '
      .. '"http://127.0.0.1:9/loki/api/v1/push"\n  }\n}', label))
  end
  for label in src:gmatch("prometheus%.exporter%.self%.([%w_]+)%.targets") do
    need("prometheus.exporter.self." .. label, string.format("prometheus.exporter.self %q {}", label))
  end
  if src:find('prometheus.scrape "kubelet"', 1, true) and not src:find("forward_to", 1, true) then
    src = src:gsub('(prometheus.scrape "kubelet" {\n)', "%1" .. ELIDED)
  end
  return src .. (#extra > 0 and ("\n" .. table.concat(extra, "\n") .. "\n") or "")
end

local function examples()
  local out = {}
  for _, doc in ipairs({ "reference-examples.md", "guide-examples.md" }) do
    for i, b in ipairs(alloy_blocks(assert(proc.read_file(FIXTURES .. "/" .. doc)))) do
      out[#out + 1] = { name = string.format("%s#%d", doc, i), src = b }
    end
  end
  return out
end

describe("Alloy configuration files", function()
  teardown(proc.kill_spawned)

  it("the copy of the reference documents' examples matches the documents", function()
    local dir = os.getenv("MOONWATCH_REFERENCE_DIR") or "/work/shared/reference"
    local ls = proc.sh("ls " .. proc.quote(dir) .. "/0*.txt 2>/dev/null")
    if ls == "" then
      pending("no reference documents at " .. dir)
      return
    end
    local from_docs = {}
    for f in ls:gmatch("[^\n]+") do
      local text = assert(proc.read_file(f))
      for block in text:gmatch("\n[ \t]*```alloy\n(.-)\n[ \t]*```") do
        from_docs[#from_docs + 1] = strip(block .. "\n")
      end
    end
    local copy = alloy_blocks(assert(proc.read_file(FIXTURES .. "/reference-examples.md")))
    assert.equals(#from_docs, #copy)
    for i, b in ipairs(copy) do
      assert.equals(from_docs[i], strip(b))
    end
  end)

  it("every example passes check, converts, and the converted Lua passes check", function()
    local n = 0
    for _, ex in ipairs(examples()) do
      n = n + 1
      local src = complete(ex.src)
      local file = proc.write(string.format("%s/ex%d.alloy", tmp, n), src)
      local code, out, err = proc.run({ "check", file })
      assert.equals(0, code, ex.name .. ":\n" .. src .. "\n" .. err)
      assert.matches("ok %(%d+ components%)", out)
      local ccode, lua, cerr = proc.run({ "convert", file })
      assert.equals(0, ccode, ex.name .. ": " .. cerr)
      local lfile = proc.write(string.format("%s/ex%d.lua", tmp, n), lua)
      local lcode, _, lerr = proc.run({ "check", lfile })
      assert.equals(0, lcode, ex.name .. ":\n" .. lua .. "\n" .. lerr)
    end
    assert.equals(18, n) -- 15 fenced in the reference documents, 3 of the guide
  end)

  it("lists every unknown component at once, each with file:line:col", function()
    local file = proc.write(tmp .. "/unknown.alloy", [[
prometheus.exporter.self "a" {}
foo.bar "x" {}

faro.receiver "p" {
  server { listen_port = 12347 }
}
  beyla.ebpf "o" {}
prometheus.scrape "s" {
  targets    = prometheus.exporter.self.a.targets
  forward_to = [prometheus.remote_write.nope.receiver]
  scrape_intervall = "10s"
}
]])
    local code, _, err = proc.run({ "check", file })
    assert.equals(1, code)
    local lines = {}
    for l in err:gmatch("[^\n]+") do
      lines[#lines + 1] = l:gsub("%(searched.*%)$", "")
    end
    assert.same({
      file .. ':2:1: foo.bar "x": unknown component "foo.bar" ',
      file .. ':4:1: faro.receiver "p": unknown component "faro.receiver" ',
      file .. ':7:3: beyla.ebpf "o": unknown component "beyla.ebpf" ',
      file .. ':10:17: prometheus.scrape "s": reference to undeclared component: prometheus.remote_write.nope.receiver',
      file .. ':11:3: prometheus.scrape "s": scrape_intervall: unknown argument (did you mean "scrape_interval"?)',
    }, lines)
  end)

  it("refuses Alloy's module and server blocks, naming them", function()
    local file = proc.write(tmp .. "/modules.alloy", [[
import.file "m" {
  filename = "x.alloy"
}
declare "c" {}
livedebugging {
  enabled = true
}
x = 1
]])
    local code, _, err = proc.run({ "check", file })
    assert.equals(1, code)
    assert.equals(table.concat({
      file .. ":1:1: import.file: not supported by moonwatch (modules)",
      file .. ":4:1: declare: not supported by moonwatch (custom components (declare))",
      file .. ":5:1: livedebugging: not supported by moonwatch (the livedebugging block (moonwatch's live "
        .. "debugging is always on))",
      file .. ":8:1: x: an attribute is not allowed at the top level (only blocks)",
    }, "\n") .. "\n", err)
  end)

  it("reports a syntax error as file:line:col and runs nothing", function()
    local file = proc.write(tmp .. "/syntax.alloy", 'prometheus.exporter.self "a" {\n  x = [1, 2\n}\n')
    local code, _, err = proc.run({ "check", file })
    assert.equals(1, code)
    assert.equals(file .. ":3:1: expected ',' or ']', got '}'\n", err)
    code, _, err = proc.run({ "convert", file })
    assert.equals(1, code)
    assert.equals(file .. ":3:1: expected ',' or ']', got '}'\n", err)
    -- a directory named *.alloy is refused with a message, not an internal error
    local dir = tmp .. "/dir.alloy"
    assert(os.execute("mkdir -p " .. dir))
    for _, cmd in ipairs({ "check", "convert" }) do
      code, _, err = proc.run({ cmd, dir })
      assert.equals(1, code, cmd)
      assert.matches("cannot read " .. dir:gsub("%p", "%%%0") .. ": Is a directory", err)
      assert.is_nil(err:find("internal error", 1, true), err)
    end
    -- .river, the syntax's former name, is read as Alloy too
    local river = proc.write(tmp .. "/syntax.river", 'prometheus.exporter.self "a" {}\n')
    code = proc.run({ "check", river })
    assert.equals(0, code)
  end)

  it("runs an .alloy file and its conversion as the same graph", function()
    local secret = proc.write(tmp .. "/password", "s3cr3t\n")
    local logf = proc.write(tmp .. "/app.log", "")
    local src = string.format([[
// every shape: labels, nested and repeated blocks, stages, references, expressions
local.file "pw" {
  filename  = "%s"
  is_secret = true
}
local.file_match "logs" {
  path_targets = [{"__path__" = "%s", "job" = "app"}]
}
prometheus.exporter.self "self" {}
discovery.relabel "t" {
  targets = concat(prometheus.exporter.self.self.targets, [{"__address__" = "127.0.0.1:9", "job" = "x"}])
  rule {
    source_labels = ["job"]
    target_label  = "team"
    replacement   = to_upper("ops") + "-" + format("%%d", 2 * 3 + 1)
  }
  rule {
    action = "labeldrop"
    regex  = "tmp_.*"
  }
}
prometheus.scrape "s" {
  targets         = discovery.relabel.t.output
  forward_to      = [prometheus.remote_write.rw.receiver]
  scrape_interval = "1m"
  job_name        = "j-" + local.file_match.logs.targets[0]["job"]
}
prometheus.remote_write "rw" {
  endpoint {
    url = "http://127.0.0.1:9/api/v1/write"
    basic_auth {
      username = coalesce(sys.env("MOONWATCH_SURELY_UNSET"), "user")
      password = local.file.pw.content
    }
  }
  external_labels = { "cluster" = `c1`, env = trim_space("  prod ") }
}
loki.source.file "f" {
  targets    = local.file_match.logs.targets
  forward_to = [loki.process.p.receiver]
}
loki.process "p" {
  forward_to = [loki.write.w.receiver]
  stage.json {
    expressions = { "level" = "", msg = "message" }
  }
  stage.labels {
    values = { level = "" }
  }
  stage.drop {
    older_than = "1h"
  }
}
loki.write "w" {
  endpoint {
    url = "http://127.0.0.1:9/loki/api/v1/push"
  }
  external_labels = { host = constants.hostname }
}
]], secret, logf)
    local afile = proc.write(tmp .. "/graph.alloy", src)
    local code, lua, err = proc.run({ "convert", afile })
    assert.equals(0, code, err)
    assert.matches("local_%.file \"pw\"", lua)
    assert.matches("stage%.json {", lua)
    assert.matches("\n%-%- every shape: labels, nested and repeated blocks", lua) -- the comments come along
    local lfile = proc.write(tmp .. "/graph.lua", lua)
    local function graph(file, dir)
      local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/" .. dir })
      local ids
      proc.wait_for(function()
        local _, body = proc.http("GET", h.base .. "/api/v0/components")
        local list = cjson.decode(body)
        list = list.components or list
        local healthy = 0
        ids = {}
        for _, c in ipairs(list) do
          ids[#ids + 1] = c.id
          healthy = healthy + ((c.health and (c.health.state or c.health) ~= "unknown") and 1 or 0)
        end
        return healthy == #list and #list > 0
      end, 10, "components started")
      table.sort(ids)
      local out = {}
      for _, id in ipairs(ids) do
        local _, body = proc.http("GET", h.base .. "/api/v0/components/" .. id)
        local c = cjson.decode(body)
        for _, st in ipairs(c.arguments.stage or {}) do
          st.line = nil -- where the stage is written: the one difference between the two files
        end
        out[id] = { name = c.name, label = c.label, arguments = c.arguments, exports = c.exports,
          dependencies = c.dependencies, dependents = c.dependents, health = c.health and c.health.state }
      end
      h.kill("TERM")
      assert.equals(0, h.wait(15))
      return ids, out
    end
    local a_ids, a = graph(afile, "da")
    local l_ids, l = graph(lfile, "dl")
    assert.same(a_ids, l_ids)
    assert.equals(9, #a_ids)
    assert.same(a, l)
    -- the expressions were evaluated as Alloy does, and the secret never shows
    local rules = a["discovery.relabel.t"].arguments.rule
    assert.equals("OPS-7", rules[1].replacement)
    assert.equals("j-app", a["prometheus.scrape.s"].arguments.job_name)
    -- a reference inside an expression is a dependency as a plain one is
    local deps = a["prometheus.scrape.s"].dependencies
    table.sort(deps)
    assert.same({ "discovery.relabel.t", "local.file_match.logs", "prometheus.remote_write.rw" }, deps)
    assert.equals("prod", a["prometheus.remote_write.rw"].arguments.external_labels.env)
    assert.is_nil(cjson.encode(a):find("s3cr3t", 1, true))
  end)

  it("local.file exports a file's contents, re-read when it changes; a secret stays hidden", function()
    local name = proc.write(tmp .. "/job", "first")
    local pw = proc.write(tmp .. "/pw", "hunter2")
    local file = proc.write(tmp .. "/lf.alloy", string.format([[
local.file "job" {
  filename = "%s"
}
local.file "pw" {
  filename       = "%s"
  is_secret      = true
  detector       = "poll"
  poll_frequency = "1h"
}
local.file "missing" {
  filename = "%s/nope"
}
prometheus.scrape "s" {
  targets    = [{"__address__" = "127.0.0.1:9"}]
  forward_to = []
  job_name   = trim_space(local.file.job.content) + "-job"
  bearer_token = local.file.pw.content
}
]], name, pw, tmp))
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/dlf" })
    local function get(id)
      local _, body = proc.http("GET", h.base .. "/api/v0/components/" .. id)
      return cjson.decode(body), body
    end
    assert.equals("first-job", get("prometheus.scrape.s").arguments.job_name)
    proc.write(name, "second\n")
    proc.wait_for(function()
      return get("prometheus.scrape.s").arguments.job_name == "second-job"
    end, 5, "job_name re-evaluated from the changed file")
    local c, body = get("local.file.pw")
    assert.equals("healthy", c.health.state or c.health)
    assert.is_nil(body:find("hunter2", 1, true))
    local _, sbody = get("prometheus.scrape.s")
    assert.is_nil(sbody:find("hunter2", 1, true))
    local m = get("local.file.missing")
    assert.equals("unhealthy", m.health.state or m.health)
    assert.matches("cannot read the file", m.health.message or cjson.encode(m.health))
    h.kill("TERM")
    assert.equals(0, h.wait(15))
  end)

  it("encoding.from_json keeps null fields and list items, as Alloy's", function()
    -- Alloy: a null field exists (its value null, so coalesce falls back), a list keeps its
    -- null; as a component argument a null label is no label
    local j = proc.write(tmp .. "/sd.json",
      '{"job": null, "tags": [null, "x"], "targets": [{"__address__": "127.0.0.1:9", "env": null}]}')
    local file = proc.write(tmp .. "/json.alloy", string.format([[
local.file "j" {
  filename = "%s"
}
prometheus.scrape "s" {
  targets    = encoding.from_json(local.file.j.content).targets
  forward_to = []
  job_name   = coalesce(encoding.from_json(local.file.j.content).job, "fallback") + "-" + format("%%v", encoding.from_json(local.file.j.content).tags)
}
]], j))
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/djson" })
    local _, body = proc.http("GET", h.base .. "/api/v0/components/prometheus.scrape.s")
    local c = cjson.decode(body)
    assert.equals("fallback-[<nil> x]", c.arguments.job_name)
    assert.same({ { __address__ = "127.0.0.1:9" } }, c.arguments.targets)
    h.kill("TERM")
    assert.equals(0, h.wait(15))
  end)

  it("local.file that becomes unreadable keeps its last contents, unhealthy, then healthy again when it is back", function()
    local name = proc.write(tmp .. "/gone", "kept")
    local file = proc.write(tmp .. "/lfgone.alloy", string.format([[
local.file "job" {
  filename = "%s"
}
prometheus.scrape "s" {
  targets    = [{"__address__" = "127.0.0.1:9"}]
  forward_to = []
  job_name   = trim_space(local.file.job.content) + "-job"
}
]], name))
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/dlfg" })
    local function get(id)
      local _, body = proc.http("GET", h.base .. "/api/v0/components/" .. id)
      return cjson.decode(body)
    end
    local function state()
      local c = get("local.file.job")
      return c.health.state or c.health, c.health.message
    end
    assert.equals("healthy", (state()))
    assert.equals("kept-job", get("prometheus.scrape.s").arguments.job_name)
    os.remove(name)
    proc.wait_for(function()
      return state() == "unhealthy"
    end, 5, "local.file unhealthy once its file is gone")
    local _, msg = state()
    assert.matches("cannot read the file", msg)
    -- its debug info counts the failed reads among the reads
    local info = get("local.file.job").debug_info
    assert.is_true(info.read_failures >= 1 and info.reads > info.read_failures, cjson.encode(info))
    -- the last contents stay exported: the reader is not re-evaluated to an empty job name
    assert.equals("kept-job", get("prometheus.scrape.s").arguments.job_name)
    proc.write(name, "back\n")
    proc.wait_for(function()
      return state() == "healthy" and get("prometheus.scrape.s").arguments.job_name == "back-job"
    end, 5, "local.file healthy again and its new contents exported once the file is back")
    h.kill("TERM")
    assert.equals(0, h.wait(15))
  end)

  it("reloads an .alloy file: changes applied in place, a broken file refused with file:line:col", function()
    local conf = [[
prometheus.exporter.self "a" {}
prometheus.scrape "s" {
  targets         = prometheus.exporter.self.a.targets
  forward_to      = []
  scrape_interval = "%s"
}
]]
    local file = proc.write(tmp .. "/reload.alloy", conf:format("30s"))
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/dre" })
    local function interval()
      local _, body = proc.http("GET", h.base .. "/api/v0/components/prometheus.scrape.s")
      return cjson.decode(body).arguments.scrape_interval
    end
    assert.equals("30s", interval())
    proc.write(file, conf:format("45s"))
    local status = proc.http("POST", h.base .. "/-/reload")
    assert.equals(200, status)
    assert.equals("45s", interval())
    proc.write(file, conf:format("45s") .. 'prometheus.scrape "t" {\n  targets = [1 2]\n}\n')
    local body
    status, body = proc.http("POST", h.base .. "/-/reload")
    assert.equals(400, status)
    assert.matches("reload%.alloy:8:16: expected ',' or ']', got number 2", body)
    assert.equals("45s", interval())
    h.kill("TERM")
    assert.equals(0, h.wait(15))
  end)

  it("runs the prometheus.exporter.self example unchanged into VictoriaMetrics", function()
    local vport = proc.free_port()
    rw.start_vm(vport, tmp .. "/vm")
    local ex = examples()[2]
    assert.matches('prometheus.exporter.self "example"', ex.src)
    local src = ex.src:gsub("<PROMETHEUS_REMOTE_WRITE_URL>", "http://127.0.0.1:" .. vport .. "/api/v1/write")
      :gsub("<USERNAME>", "user"):gsub("<PASSWORD>", "pass")
    local file = proc.write(tmp .. "/self.alloy", src)
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/dself" })
    -- the scrape's first slot is within its 60s interval (a stable offset, as Prometheus's); one
    -- scrape's series travel in several shards, so they may arrive in more than one request
    local series = proc.wait_for(function()
      proc.http("GET", "http://127.0.0.1:" .. vport .. "/internal/force_flush")
      local _, body = proc.http("GET", "http://127.0.0.1:" .. vport
        .. "/api/v1/series?match%5B%5D=%7Bjob%3D%22integrations%2Fself%22%7D")
      local data = body and cjson.decode(body).data or {}
      local names = {}
      for _, s in ipairs(data) do
        names[s.__name__] = true
      end
      return names.up and (names.moonwatch_build_info or names.process_cpu_seconds_total) and data
    end, 80, "exporter.self samples (up and moonwatch's own metrics) in VictoriaMetrics")
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    assert.is_true(#series > 10, #series .. " series")
    for _, s in ipairs(series) do
      assert.equals("integrations/self", s.job)
    end
  end)
end)
