-- End-to-end: the web UI of a real pipeline in headless Chromium, driven through the DevTools
-- protocol (helpers.chromium): the graph runs with the data (exporter -> scrape -> relabel ->
-- remote_write, scrape -> echo), edges show their rates, nodes their health as it changes,
-- and a component's page its debug info and, switched on, live debugging. Assertions are on
-- the DOM and the drawn SVG geometry; one screenshot checks that it is painted at all.
local proc = require("helpers.proc")
local png = require("helpers.png")
local chromium = require("helpers.chromium")
local cjson = require("cjson")

local FIXTURES = proc.source .. "/tests/lua/fixtures/components"
local tmp = proc.tmpdir()
local PASSWORD, HEADER = "ui-password-must-not-leak", "ui-header-must-not-leak"

local function wait_http(url, timeout)
  local deadline = os.time() + (timeout or 20)
  repeat
    if proc.http("GET", url) == 200 then
      return true
    end
    os.execute("sleep 0.1")
  until os.time() > deadline
  error("no answer from " .. url)
end

-- JavaScript: the box of a node and the ends of the edge from -> to, in SVG coordinates.
local GEOMETRY = [[((from, to) => {
  const box = id => {
    const r = document.querySelector(`g.node[data-id="${id}"] rect`);
    if (!r) return null;
    const b = r.getBBox();
    return { x: b.x, y: b.y, w: b.width, h: b.height };
  };
  const p = document.querySelector(`path.edge[data-from="${from}"][data-to="${to}"]`);
  const back = document.querySelector(`path.edge[data-from="${to}"][data-to="${from}"]`);
  if (!p) return { from: box(from), to: box(to), edge: false, reversed: !!back };
  const len = p.getTotalLength(), s = p.getPointAtLength(0), e = p.getPointAtLength(len);
  return { from: box(from), to: box(to), edge: true, reversed: !!back,
    start: { x: s.x, y: s.y }, finish: { x: e.x, y: e.y }, marker: getComputedStyle(p).markerEnd };
})]]

-- Asserts that the edge from -> to is drawn from the right side of from's box to the left
-- side of to's box, to's box right of from's, the arrowhead at to's end.
local function assert_flows(b, from, to)
  local g = b:eval(string.format("%s(%q, %q)", GEOMETRY, from, to))
  assert.is_truthy(g.from, "no node " .. from)
  assert.is_truthy(g.to, "no node " .. to)
  assert.is_true(g.edge, "no edge drawn from " .. from .. " to " .. to)
  assert.is_false(g.reversed, "an edge drawn from " .. to .. " to " .. from)
  assert.is_true(g.to.x >= g.from.x + g.from.w, string.format("%s (x=%g) is not right of %s (x=%g..%g)", to, g.to.x,
    from, g.from.x, g.from.x + g.from.w))
  assert.near(g.from.x + g.from.w, g.start.x, 0.5)
  assert.is_true(g.start.y >= g.from.y and g.start.y <= g.from.y + g.from.h)
  assert.near(g.to.x, g.finish.x, 0.5)
  assert.is_true(g.finish.y >= g.to.y and g.finish.y <= g.to.y + g.to.h)
  assert.matches("url%(.*#arrow", g.marker)
end

local function node_state(b, id)
  return b:eval(string.format([[(() => {
    const g = document.querySelector(`g.node[data-id="%s"]`);
    return g && { cls: g.getAttribute("class"), fill: getComputedStyle(g.querySelector("rect")).fill,
      title: g.querySelector("title").textContent };
  })()]], id))
end

describe("web UI", function()
  local h, b, rpid, sick

  setup(function()
    local rport
    rport = proc.free_port()
    local p = io.popen(string.format("%s lua %s/tests/e2e/fixtures/sample_receiver.lua %d %s >/dev/null 2>&1 "
      .. "</dev/null & echo $!", proc.quote(proc.bin), proc.source, rport, tmp .. "/received"))
    rpid = tonumber(p:read("*l"))
    p:close()
    wait_http("http://127.0.0.1:" .. rport .. "/-/ready")
    sick = tmp .. "/sick"
    local file = proc.write(tmp .. "/ui.lua", string.format([[
prometheus.exporter.self "self" {}
prometheus.scrape "metrics" {
  targets = prometheus.exporter.self.self.targets,
  forward_to = { prometheus.relabel.keep.receiver },
  scrape_interval = "1s", scrape_timeout = "1s",
}
prometheus.relabel "keep" {
  forward_to = { prometheus.remote_write.out.receiver },
  rule = { action = "keep", source_labels = { "__name__" }, regex = "up|moonwatch_build_info" },
}
prometheus.remote_write "out" {
  endpoint = {
    url = "http://moon:%s@127.0.0.1:%d/api/v1/write",
    headers = { ["X-Scope-OrgID"] = "%s" },
    queue_config = { batch_send_deadline = "100ms" },
  },
}
prometheus.scrape "to_echo" {
  targets = prometheus.exporter.self.self.targets,
  forward_to = { prometheus.echo.echo.receiver },
  scrape_interval = "1s", scrape_timeout = "1s",
}
prometheus.echo "echo" { file = %q }
test.health "flaky" { file = %q }
test.consumer "broken" { fail_run = true }
]], PASSWORD, rport, HEADER, tmp .. "/echo.txt", sick))
    h = proc.start_run(file, { "--component.path=" .. FIXTURES, "--storage.path=" .. tmp .. "/data" })
    b = chromium.start({ width = 1280, height = 800 })
    b:navigate(h.base .. "/")
    b:wait("document.querySelectorAll('g.node').length === 8")
  end)

  teardown(function()
    if b then
      b:close()
    end
    if h then
      h.kill("TERM")
      h.wait(10)
    end
    if rpid then
      os.execute("kill " .. rpid .. " 2>/dev/null")
    end
  end)

  it("draws every component coloured by its health", function()
    for _, id in ipairs({ "prometheus.exporter.self.self", "prometheus.scrape.metrics", "prometheus.relabel.keep",
      "prometheus.remote_write.out", "prometheus.scrape.to_echo", "prometheus.echo.echo", "test.health.flaky" }) do
      local st = node_state(b, id)
      assert.equals("node healthy", st.cls, id)
      assert.equals("rgb(215, 245, 221)", st.fill, id)
    end
    local st = node_state(b, "test.consumer.broken")
    assert.equals("node unhealthy", st.cls)
    assert.equals("rgb(249, 208, 208)", st.fill)
    assert.matches("unhealthy: run failed", st.title, 1, true)
    b:wait("document.getElementById('summary').textContent === '8 components: 7 healthy, 1 unhealthy'")
  end)

  it("draws the arrow of a scrape into the echo it forwards to: the echo downstream, right of it", function()
    assert_flows(b, "prometheus.scrape.to_echo", "prometheus.echo.echo")
  end)

  it("draws exporter -> scrape -> relabel -> remote_write left to right, arrows in data direction", function()
    assert_flows(b, "prometheus.exporter.self.self", "prometheus.scrape.metrics")
    assert_flows(b, "prometheus.scrape.metrics", "prometheus.relabel.keep")
    assert_flows(b, "prometheus.relabel.keep", "prometheus.remote_write.out")
    -- components that pass no data have no edges
    assert.equals(0, b:eval([[document.querySelectorAll('path.edge[data-from="test.consumer.broken"],'
      + 'path.edge[data-to="test.consumer.broken"]').length]]))
    assert.equals(5, b:eval("document.querySelectorAll('path.edge').length"))
  end)

  it("shows each edge's rate once samples flow", function()
    local rate = [[((from, to) => {
      const t = document.querySelector(`text.rate[data-from="${from}"][data-to="${to}"]`);
      const m = t && t.textContent.match(/^([0-9.]+) samples\/s$/);
      return m ? Number(m[1]) : 0;
    })]]
    for _, e in ipairs({ { "prometheus.exporter.self.self", "prometheus.scrape.metrics" },
      { "prometheus.scrape.metrics", "prometheus.relabel.keep" },
      { "prometheus.relabel.keep", "prometheus.remote_write.out" },
      { "prometheus.scrape.to_echo", "prometheus.echo.echo" } }) do
      b:wait(string.format("%s(%q, %q) > 0", rate, e[1], e[2]), 15,
        "Array.from(document.querySelectorAll('text.rate')).map(t => t.textContent)")
      assert.is_true(b:eval(string.format([[document.querySelector('path.edge[data-from="%s"][data-to="%s"]')
        .classList.contains("flowing")]], e[1], e[2])))
    end
  end)

  it("colours a node as its component turns unhealthy and back, and says why", function()
    local id = "test.health.flaky"
    proc.write(sick, "disk on fire\n")
    b:wait([[(() => { const g = document.querySelector('g.node[data-id="test.health.flaky"]');
      return g.getAttribute("class") === "node unhealthy"
        && getComputedStyle(g.querySelector("rect")).fill === "rgb(249, 208, 208)"; })()]], 15)
    local st = node_state(b, id)
    assert.equals("test.health.flaky\nunhealthy: told so: disk on fire", st.title)
    b:wait("document.getElementById('summary').textContent === '8 components: 6 healthy, 2 unhealthy'")
    os.remove(sick)
    b:wait([[(() => { const g = document.querySelector('g.node[data-id="test.health.flaky"]');
      return g.getAttribute("class") === "node healthy"
        && getComputedStyle(g.querySelector("rect")).fill === "rgb(215, 245, 221)"; })()]], 15)
    assert.equals("test.health.flaky\nhealthy: no complaints", node_state(b, id).title)
  end)

  it("opens a component's page on click: health, data flow, debug info, no secret", function()
    b:eval([[document.querySelector('g.node[data-id="prometheus.remote_write.out"]')
      .dispatchEvent(new MouseEvent("click", { bubbles: true }))]])
    b:wait([[document.getElementById("c-title").textContent === 'prometheus.remote_write "out"']])
    assert.equals("#/component/prometheus.remote_write.out", b:eval("location.hash"))
    assert.is_true(b:eval("document.getElementById('page-graph').hidden"))
    b:wait([[document.getElementById("c-health").textContent.startsWith("healthy")]])
    b:wait([[Array.from(document.querySelectorAll("#flow tr.flow-in td")).map(td => td.textContent).join("|")
      .startsWith("in, from|prometheus.relabel.keep|")]])
    local text = b:eval("document.body.innerText")
    assert.matches("Debug info", text, 1, true)
    assert.matches("samples_committed", text, 1, true)
    assert.matches("http://moon:xxxxx@127.0.0.1", text, 1, true)
    assert.matches('"X-Scope-OrgID": "(secret)"', text, 1, true)
    assert.is_nil(text:find(PASSWORD, 1, true))
    assert.is_nil(text:find(HEADER, 1, true))
  end)

  it("shows no live samples while live debugging is off, the last ones once switched on", function()
    local id = "prometheus.relabel.keep"
    b:navigate(h.base .. "/#/component/" .. id)
    b:wait([[document.getElementById("c-title").textContent === 'prometheus.relabel "keep"']])
    b:wait([[document.getElementById("live-status").textContent.startsWith("off")]])
    os.execute("sleep 2.5") -- samples flow through the relabel every second meanwhile
    assert.equals(0, b:eval("document.querySelectorAll('#live tr.live-entry').length"))
    local _, body = proc.http("GET", h.base .. "/api/v0/livedebugging/" .. id)
    assert.same({}, cjson.decode(body).entries)

    b:eval([[document.getElementById("live-toggle").click()]])
    b:wait([[document.getElementById("live-status").textContent.startsWith("on")]])
    b:wait("document.querySelectorAll('#live tr.live-entry').length >= 4", 15)
    local rows = b:eval([[Array.from(document.querySelectorAll('#live tr.live-entry'))
      .map(tr => Array.from(tr.cells).map(td => td.textContent))]])
    local ins, outs = 0, 0
    for _, r in ipairs(rows) do
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", r[1])
      if r[2] == "in, from prometheus.scrape.metrics" then
        ins = ins + 1
      elseif r[2] == "out, to prometheus.remote_write.out" then
        outs = outs + 1
        assert.is_truthy(r[3]:match('^up{instance="[^"]*",job="integrations/self"} 1 %d+$')
          or r[3]:match('^moonwatch_build_info{.*} 1 %d+$'), r[3])
      else
        error("unexpected direction: " .. r[2])
      end
    end
    assert.is_true(ins > 0 and outs > 0)

    -- switched off: nothing more comes
    b:eval([[document.getElementById("live-toggle").click()]])
    b:wait([[document.getElementById("live-status").textContent.startsWith("off")]])
    local _, st = proc.http("GET", h.base .. "/api/v0/livedebugging/" .. id)
    local seq = cjson.decode(st).seq
    local n = b:eval("document.querySelectorAll('#live tr.live-entry').length")
    os.execute("sleep 2.5")
    assert.equals(n, b:eval("document.querySelectorAll('#live tr.live-entry').length"))
    _, st = proc.http("GET", h.base .. "/api/v0/livedebugging/" .. id)
    assert.equals(seq, cjson.decode(st).seq)
    -- Clear empties the view
    b:eval([[document.getElementById("live-clear").click()]])
    b:wait("document.querySelectorAll('#live tr.live-entry').length === 0")
  end)

  it("renders the graph on screen (screenshot)", function()
    local shot = tmp .. "/ui.png"
    b:navigate(h.base .. "/")
    b:wait("document.querySelectorAll('g.node').length === 8")
    b:screenshot(shot)
    local img = png.read(shot)
    assert.equals(1280, img.width)
    -- node boxes are 240x64: healthy ones green, the failing one red
    assert.is_true(png.count(img, "#d7f5dd") > 3 * 200 * 40, "healthy nodes not drawn")
    assert.is_true(png.count(img, "#f9d0d0") > 200 * 40, "unhealthy node not drawn")
  end)
end)
