-- End-to-end: the moonwatch binary's commands, exit codes, messages and signals.
local proc = require("helpers.proc")

local SRC = proc.source
local FIXTURES = SRC .. "/tests/lua/fixtures/components"
local tmp = proc.tmpdir()

describe("moonwatch CLI", function()
  it("prints its version", function()
    local code, out = proc.run({ "version" })
    assert.equals(0, code)
    assert.matches("^moonwatch, version %d+%.%d+%.%d+ %(revision: [%w]+%)\n  luajit: LuaJIT 2%.1", out)
  end)

  it("prints help with --help and exits 0", function()
    local code, out = proc.run({ "--help" })
    assert.equals(0, code)
    assert.matches("Usage: moonwatch <command>", out, 1, true)
    assert.matches("--server.http.listen-addr", out, 1, true)
  end)

  it("doc lists the components and prints one's reference from its schema", function()
    local code, out = proc.run({ "doc" })
    assert.equals(0, code)
    assert.matches("\n  prometheus.scrape%s+Scrapes Prometheus metrics", out)
    assert.is_nil(out:find("cannot load", 1, true))
    local code2, ref = proc.run({ "doc", "prometheus.scrape" })
    assert.equals(0, code2)
    assert.matches("| `scrape_interval` | duration | How frequently to scrape the targets. Greater than 0s. | 60s | no |",
      ref, 1, true)
    assert.matches("| `targets` | targets | List of targets to scrape. |  | yes |", ref, 1, true)
    assert.matches("Mutually exclusive: bearer_token, bearer_token_file, basic_auth, authorization, oauth2.", ref, 1, true)
    local code3, _, err = proc.run({ "doc", "nope.nothing" })
    assert.equals(1, code3)
    assert.matches("unknown component nope.nothing", err, 1, true)
  end)

  it("exits 2 with usage on no command or an unknown flag", function()
    local code = proc.run({})
    assert.equals(2, code)
    local code2, _, err = proc.run({ "run", "--no.such-flag=1", "x.lua" })
    assert.equals(2, code2)
    assert.matches("unknown flag --no.such-flag", err, 1, true)
  end)

  it("check: a syntax error prints file:line: message and exits 1", function()
    local f = proc.write(tmp .. "/syntax.lua", 'logging {\n  level = "info"\n  format = "json",\n}\n')
    local code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches("^" .. f:gsub("%p", "%%%0") .. ":3: '}' expected %(to close '{' at line 1%) near 'format'\n$", err)
  end)

  it("check: reports every validation problem and exits 1", function()
    local f = proc.write(tmp .. "/invalid.lua", [[
logging { level = "loud" }
test.consumer "a" { intervall = "1m" }
]])
    local code, _, err = proc.run({ "check", "--component.path=" .. FIXTURES, f })
    assert.equals(1, code)
    assert.matches(f .. ":1: logging: level: must be one of debug, info, warn, error", err, 1, true)
    assert.matches(f .. ':2: test.consumer "a": intervall: unknown argument (did you mean "interval"?)', err, 1, true)
  end)

  it("check: a valid pipeline exits 0 and runs nothing", function()
    local f = proc.write(tmp .. "/valid.lua", 'test.consumer "a" { fail_run = true }\n')
    local code, out = proc.run({ "check", "--component.path=" .. FIXTURES, f })
    assert.equals(0, code)
    assert.matches("ok (1 components)", out, 1, true)
  end)

  it("check: MOONWATCH_COMPONENT_PATH adds to the component search path", function()
    local f = proc.write(tmp .. "/envpath.lua", 'test.consumer "a" {}\n')
    local code = proc.run({ "check", f })
    assert.equals(1, code)
    local code2, out = proc.run({ "check", f }, { env = "MOONWATCH_COMPONENT_PATH=/nonexistent:" .. FIXTURES })
    assert.equals(0, code2)
    assert.matches("ok (1 components)", out, 1, true)
  end)

  it("run: a pipeline that fails to load exits 1 at once", function()
    local f = proc.write(tmp .. "/bad-run.lua", 'nosuch.component "x" {}\n')
    local code, _, err = proc.run({ "run", "--server.http.listen-addr=127.0.0.1:0", f })
    assert.equals(1, code)
    assert.matches('unknown component "nosuch.component"', err, 1, true)
  end)

  it("run: SIGTERM stops the components and exits 0 promptly", function()
    local f = proc.write(tmp .. "/run.lua", [[
test.producer "p" {}
test.consumer "c" { targets = test.producer.p.targets }
]])
    local h = proc.start({ "run", "--server.http.listen-addr=127.0.0.1:0", "--storage.path=" .. tmp .. "/data",
      "--component.path=" .. FIXTURES, f })
    assert.is_true(h.wait_log("pipeline running", 10), h.read())
    local t0 = os.time()
    h.kill("TERM")
    assert.equals(0, h.wait(10))
    assert.is_true(os.time() - t0 <= 3)
    local log = h.read()
    assert.matches('msg="shutting down" signal=SIGTERM', log, 1, true)
    assert.matches('msg="shutdown complete"', log, 1, true)
  end)

  it("run: the logging block sets JSON format and the level", function()
    local f = proc.write(tmp .. "/json.lua", 'logging { level = "info", format = "json" }\ntest.consumer "c" {}\n')
    local h = proc.start({ "run", "--server.http.listen-addr=127.0.0.1:0", "--component.path=" .. FIXTURES, f })
    os.execute("sleep 0.5")
    h.kill("TERM")
    assert.equals(0, h.wait(10))
    local lines = {}
    for line in h.read():gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    local msgs = {}
    for _, line in ipairs(lines) do
      local entry = require("cjson").decode(line) -- every line is JSON
      assert.truthy(entry.ts and entry.level)
      msgs[entry.msg] = entry.level
    end
    assert.equals("info", msgs["pipeline running"])
    assert.equals("info", msgs["shutdown complete"])
    -- and a higher level filters info lines out
    proc.write(f, 'logging { level = "error", format = "json" }\ntest.consumer "c" {}\n')
    local h2 = proc.start({ "run", "--server.http.listen-addr=127.0.0.1:0", "--component.path=" .. FIXTURES, f })
    os.execute("sleep 0.5")
    h2.kill("TERM")
    assert.equals(0, h2.wait(10))
    assert.is_nil(h2.read():find("shutdown complete", 1, true))
  end)

  it("run: SIGINT also stops cleanly (Ctrl-C)", function()
    local f = proc.write(tmp .. "/run-int.lua", 'test.consumer "c" {}\n')
    local h = proc.start({ "run", "--server.http.listen-addr=127.0.0.1:0", "--component.path=" .. FIXTURES, f })
    assert.is_true(h.wait_log("pipeline running", 10), h.read())
    h.kill("INT")
    assert.equals(0, h.wait(10))
  end)

  it("run: SIGHUP reloads; a broken file keeps the running pipeline", function()
    local f = proc.write(tmp .. "/reload.lua", 'test.consumer "c" {}\n')
    local h = proc.start({ "run", "--server.http.listen-addr=127.0.0.1:0", "--component.path=" .. FIXTURES, f })
    assert.is_true(h.wait_log("pipeline running", 10), h.read())
    proc.write(f, 'test.consumer "c" {}\ntest.consumer "d" {}\n')
    h.kill("HUP")
    assert.is_true(h.wait_log('msg="reloaded the pipeline" components=2', 10), h.read())
    proc.write(f, 'test.consumer "c" { interval = 5 }\n')
    h.kill("HUP")
    assert.is_true(h.wait_log('msg="reload failed; the running pipeline is unchanged"', 10), h.read())
    assert.matches('interval: expected a duration string', h.read(), 1, true)
    h.kill("TERM")
    assert.equals(0, h.wait(10))
  end)
end)
