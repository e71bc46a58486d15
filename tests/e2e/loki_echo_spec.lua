-- End-to-end: loki.echo through `moonwatch run`: each entry a logs source sends is written as
-- one logfmt line with its timestamp, stream labels, line (escaped) and structured metadata.
local proc = require("helpers.proc")

local FIXTURES = proc.source .. "/tests/lua/fixtures/components"
local tmp = proc.tmpdir()

local slurp = proc.read_file

describe("loki.echo", function()
  it("writes every entry it receives, one line each", function()
    local out = tmp .. "/echo/out.log"
    local f = proc.write(tmp .. "/echo.lua", string.format([[
test.logsource "s" {
  entries = {
    { labels = { job = "app", env = "prod" }, line = 'GET / 200 "ok"', ts = 1700000000.25 },
    { labels = { job = "app" }, line = "two\nlines", ts = 1700000001, metadata = { trace_id = "abc" } },
  },
  forward_to = { loki.echo.e.receiver },
}
loki.echo "e" { file = %q }
]], out))
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES })
    local deadline = os.time() + 10
    while not slurp(out):find("two", 1, true) and os.time() < deadline do
      os.execute("sleep 0.05")
    end
    h.kill()
    assert.equals(0, h.wait(10))
    assert.equals(
      'ts=2023-11-14T22:13:20.250000000Z labels="{env=\\"prod\\", job=\\"app\\"}" entry="GET / 200 \\"ok\\""\n'
      .. 'ts=2023-11-14T22:13:21.000000000Z labels="{job=\\"app\\"}" entry="two\\nlines" '
      .. 'structured_metadata="{trace_id=\\"abc\\"}"\n', slurp(out))
  end)

  it("is refused where a metrics receiver is expected", function()
    local f = proc.write(tmp .. "/echo-kind.lua", [[
prometheus.exporter.self "s" {}
loki.echo "e" {}
prometheus.scrape "a" { targets = prometheus.exporter.self.s.targets, forward_to = { loki.echo.e.receiver } }
]])
    local code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches("forward_to: element 1: expected a metrics receiver", err, 1, true)
  end)
end)
