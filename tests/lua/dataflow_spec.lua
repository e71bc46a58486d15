-- The data-flow graph (controller), the edge counters and receiver proxies (moonwatch.dataflow),
-- and live debugging's rings (moonwatch.livedebug).
local controller = require("moonwatch.controller")
local dataflow = require("moonwatch.dataflow")
local livedebug = require("moonwatch.livedebug")
local batches = require("helpers.batches")
local proc = require("helpers.proc")
local log = require("moonwatch.log")

local SRC = os.getenv("MOONWATCH_SOURCE_DIR") or "."
local DIRS = { SRC .. "/tests/lua/fixtures/components", SRC .. "/stdlib" }
local tmp = proc.tmpdir()
local n = 0

local function load(src)
  n = n + 1
  local file = proc.write(string.format("%s/p%d.lua", tmp, n), src)
  local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" })
  local ok, problems = ctrl:load(file)
  assert(ok, problems and table.concat(problems, "\n"))
  return ctrl, file
end

local function edge_of(window, from, to)
  for _, e in ipairs(dataflow.edges(window)) do
    if e.from == from and e.to == to then
      return e
    end
  end
end

describe("data flow", function()
  setup(function()
    log.configure({ level = "error" })
  end)
  before_each(function()
    _G.test_consumers, _G.test_producers, _G.test_recorders = {}, {}, {}
  end)

  it("runs from a component to the receivers it references, and from what it reads to it", function()
    local ctrl = load([[
test.producer "p" {}
test.consumer "scrape" { targets = test.producer.p.targets, forward_to = { test.recorder.sink.receiver } }
test.recorder "sink" {}
test.consumer "alone" {}
]])
    assert.same({
      { from = "test.consumer.scrape", to = "test.recorder.sink", type = "receiver" },
      { from = "test.producer.p", to = "test.consumer.scrape", type = "targets" },
    }, ctrl:data_flow())
    ctrl:stop()
  end)

  it("hands a component a proxy that counts each batch and passes it on untouched", function()
    local ctrl = load([[
test.consumer "src" { forward_to = { test.recorder.sink.receiver } }
test.recorder "sink" {}
]])
    local r = _G.test_consumers["test.consumer.src"].history[1].forward_to[1]
    local sink = ctrl.nodes["test.recorder.sink"].exports.receiver
    assert.are_not.equal(sink, r)
    assert.equals("test.recorder.sink", r.id) -- the receiver's fields show through
    local b, keep = batches.from_text('a{x="1"} 1\na{x="2"} 2\nb 3\n', 5000)
    r:append(b)
    assert.is_truthy(keep)
    local rec = _G.test_recorders["test.recorder.sink"]
    assert.equals(3, #rec.samples)
    assert.same({ __name__ = "a", x = "2" }, rec.samples[2].labels)
    local e = edge_of(10, "test.consumer.src", "test.recorder.sink")
    assert.equals(3, e.samples_total)
    assert.near(0.3, e.rate, 1e-9)
    -- re-evaluating gives the same proxy, so nothing looks changed
    ctrl.dirty["test.consumer.src"] = true
    ctrl:reevaluate()
    assert.equals(1, #_G.test_consumers["test.consumer.src"].history)
    ctrl:stop()
  end)

  it("forgets the edges of a component removed by a reload", function()
    local ctrl, file = load([[
test.consumer "gone" { forward_to = { test.recorder.sink2.receiver } }
test.recorder "sink2" {}
]])
    local r = _G.test_consumers["test.consumer.gone"].history[1].forward_to[1]
    local b, keep = batches.from_text("x 1\n", 5000)
    r:append(b)
    assert.is_truthy(keep)
    assert.is_truthy(edge_of(10, "test.consumer.gone", "test.recorder.sink2"))
    proc.write(file, 'test.recorder "sink2" {}\n')
    assert.is_true(ctrl:load())
    assert.is_nil(edge_of(10, "test.consumer.gone", "test.recorder.sink2"))
    assert.same({}, ctrl:data_flow())
    ctrl:stop()
  end)

  it("lets live debugging see a batch at both ends of an edge only while it is on", function()
    local ctrl = load([[
test.consumer "ld_src" { forward_to = { test.recorder.ld_sink.receiver } }
test.recorder "ld_sink" {}
]])
    local r = _G.test_consumers["test.consumer.ld_src"].history[1].forward_to[1]
    local function send(text)
      local b, keep = batches.from_text(text, 5000)
      r:append(b)
      assert.is_truthy(keep)
    end
    send("before 1\n") -- off: nothing kept at either end
    assert.equals(0, livedebug.get("test.consumer.ld_src").samples)
    assert.equals(0, livedebug.get("test.recorder.ld_sink").samples)
    -- on at the sender: it sees what it sends ("out", to the receiver), the receiver sees nothing
    livedebug.set("test.consumer.ld_src", { enabled = true, capacity = 2 })
    send("a 1\nb 2\nc 3\n")
    local st = livedebug.get("test.consumer.ld_src")
    assert.equals(3, st.samples)
    assert.same({ "b 2 5000", "c 3 5000" }, { st.entries[1].sample, st.entries[2].sample })
    assert.equals("out", st.entries[1].direction)
    assert.equals("test.recorder.ld_sink", st.entries[1].peer)
    assert.equals(0, livedebug.get("test.recorder.ld_sink").samples)
    -- on at the receiver too: it sees the batch coming "in" from the sender
    livedebug.set("test.recorder.ld_sink", { enabled = true })
    send("d 4\n")
    st = livedebug.get("test.recorder.ld_sink")
    assert.equals(1, #st.entries)
    assert.equals("in", st.entries[1].direction)
    assert.equals("test.consumer.ld_src", st.entries[1].peer)
    assert.equals("d 4 5000", st.entries[1].sample)
    assert.equals(4, livedebug.get("test.consumer.ld_src").samples)
    -- off again: nothing more is kept, what was kept stays readable, the data still flows
    livedebug.set("test.consumer.ld_src", { enabled = false })
    livedebug.set("test.recorder.ld_sink", { enabled = false })
    assert.same({}, livedebug.enabled())
    send("e 5\n")
    st = livedebug.get("test.consumer.ld_src")
    assert.is_false(st.enabled)
    assert.equals(4, st.samples)
    assert.same({ "c 3 5000", "d 4 5000" }, { st.entries[1].sample, st.entries[2].sample })
    assert.equals(1, livedebug.get("test.recorder.ld_sink").samples)
    assert.equals(6, #_G.test_recorders["test.recorder.ld_sink"].samples)
    assert.equals(6, edge_of(10, "test.consumer.ld_src", "test.recorder.ld_sink").samples_total)
    ctrl:stop()
    livedebug.forget("test.consumer.ld_src")
    livedebug.forget("test.recorder.ld_sink")
  end)

  it("forgets the live debugging of a component removed by a reload", function()
    local ctrl, file = load([[
test.consumer "ld_gone" { forward_to = { test.recorder.ld_stays.receiver } }
test.recorder "ld_stays" {}
]])
    livedebug.set("test.consumer.ld_gone", { enabled = true })
    livedebug.set("test.recorder.ld_stays", { enabled = true })
    proc.write(file, 'test.recorder "ld_stays" {}\n')
    assert.is_true(ctrl:load())
    assert.same({ "test.recorder.ld_stays" }, livedebug.enabled())
    assert.is_false(livedebug.status("test.consumer.ld_gone").enabled)
    ctrl:stop()
    livedebug.forget("test.recorder.ld_stays")
  end)

  it("a reload that fails changes no edge and leaves no proxy's series behind", function()
    local ctrl, file = load([[
test.consumer "keep" { forward_to = { test.recorder.fsink.receiver } }
test.recorder "fsink" {}
]])
    local before = ctrl:data_flow()
    -- a new sender of the running receiver, and an argument that does not validate
    proc.write(file, [[
test.consumer "keep" { forward_to = { test.recorder.fsink.receiver } }
test.recorder "fsink" {}
test.consumer "newcomer" { forward_to = { test.recorder.fsink.receiver } }
test.consumer "bad" { interval = function() return "not a duration" end }
]])
    local ok, problems = ctrl:load()
    assert.is_nil(ok)
    assert.is_true(#problems > 0)
    assert.same(before, ctrl:data_flow())
    assert.is_nil(edge_of(10, "test.consumer.newcomer", "test.recorder.fsink"))
    local body = assert(require("moonwatch.metrics").default:expose("text/plain", ""))
    assert.is_nil(body:find("test.consumer.newcomer", 1, true))
    -- the running sender still counts on its edge
    local r = _G.test_consumers["test.consumer.keep"].history[1].forward_to[1]
    r:append((batches.from_text("k 1\n", 5000)))
    assert.equals(1, edge_of(10, "test.consumer.keep", "test.recorder.fsink").samples_total)
    ctrl:stop()
  end)

  it("a rate is over the window asked for", function()
    dataflow.add("rate.a", "rate.b", 60)
    assert.near(6, edge_of(10, "rate.a", "rate.b").rate, 1e-9)
    assert.near(1, edge_of(60, "rate.a", "rate.b").rate, 1e-9)
    dataflow.forget("rate.a")
    assert.is_nil(edge_of(10, "rate.a", "rate.b"))
  end)
end)

describe("live debugging", function()
  after_each(function()
    livedebug.forget("c")
  end)

  local function capture(text, direction)
    local b, keep = batches.from_text(text, 7000, true)
    livedebug.capture("c", direction or "in", "peer", b, tonumber(require("moonwatch.batch").len(b)))
    return keep
  end

  it("keeps nothing while off", function()
    assert.is_truthy(capture("x 1\n"))
    livedebug.set("c", { enabled = false })
    assert.is_truthy(capture("x 1\n"))
    local st = livedebug.get("c")
    assert.is_false(st.enabled)
    assert.same({}, st.entries)
    assert.equals(0, st.samples)
    assert.same({}, livedebug.enabled())
  end)

  it("keeps the last capacity samples, oldest first, each as the series, value and timestamp", function()
    assert.is_truthy(livedebug.set("c", { enabled = true, capacity = 3 }))
    assert.same({ "c" }, livedebug.enabled())
    capture('a{x="1"} 1\na{x="2"} 2\n')
    capture('b{y="q\\"uote"} 0.1\nc 3\n{"my.metric","my.label"="v"} 4\n', "out")
    local st = livedebug.get("c")
    assert.equals(5, st.samples)
    assert.equals(2, st.batches)
    assert.equals(3, #st.entries)
    assert.equals('b{y="q\\"uote"} 0.1 7000', st.entries[1].sample)
    assert.equals("c 3 7000", st.entries[2].sample)
    assert.equals('{"my.metric","my.label"="v"} 4 7000', st.entries[3].sample)
    assert.equals("out", st.entries[3].direction)
    assert.equals("peer", st.entries[3].peer)
    assert.equals(5, st.entries[3].seq)
    -- a batch larger than the ring: only its tail is decoded
    capture("d 1\ne 2\nf 3\ng 4\nh 5\n")
    st = livedebug.get("c", 6) -- f, g, h were entries 6, 7, 8
    assert.same({ "g 4 7000", "h 5 7000" }, { st.entries[1].sample, st.entries[2].sample })
    assert.equals(3, #livedebug.get("c").entries)
    livedebug.clear("c")
    assert.same({}, livedebug.get("c").entries)
  end)

  it("keeps at most capacity entries however many batches pass; a new capacity starts an empty ring", function()
    livedebug.set("c", { enabled = true, capacity = 4 })
    for i = 1, 50 do
      capture(string.format("s%da 1\ns%db 2\ns%dc 3\n", i, i, i))
    end
    local st = livedebug.get("c")
    assert.equals(150, st.samples)
    assert.equals(50, st.batches)
    assert.equals(4, #st.entries)
    assert.same({ "s49c 3 7000", "s50a 1 7000", "s50b 2 7000", "s50c 3 7000" },
      { st.entries[1].sample, st.entries[2].sample, st.entries[3].sample, st.entries[4].sample })
    assert.equals(150, st.entries[4].seq)
    livedebug.set("c", { capacity = 2 })
    assert.is_true(livedebug.get("c").enabled)
    assert.same({}, livedebug.get("c").entries)
    capture("t 1\nu 2\nv 3\n")
    st = livedebug.get("c")
    assert.same({ "u 2 7000", "v 3 7000" }, { st.entries[1].sample, st.entries[2].sample })
    -- the same capacity again keeps the ring
    livedebug.set("c", { enabled = true, capacity = 2 })
    assert.equals(2, #livedebug.get("c").entries)
  end)

  it("switched off after being on keeps nothing more, and keeps what it had until cleared", function()
    livedebug.set("c", { enabled = true, capacity = 5 })
    capture("x 1\ny 2\n")
    livedebug.set("c", { enabled = false })
    assert.same({}, livedebug.enabled())
    assert.is_nil(livedebug.on.c)
    capture("z 3\n")
    local st = livedebug.get("c")
    assert.is_false(st.enabled)
    assert.equals(2, st.samples)
    assert.same({ "x 1 7000", "y 2 7000" }, { st.entries[1].sample, st.entries[2].sample })
    -- on again: the ring goes on where it was
    livedebug.set("c", { enabled = true })
    capture("w 4\n")
    st = livedebug.get("c")
    assert.equals(3, #st.entries)
    assert.equals("w 4 7000", st.entries[3].sample)
    livedebug.clear("c")
    assert.same({}, livedebug.get("c").entries)
    assert.is_true(livedebug.get("c").enabled)
  end)

  it("status reads the state without keeping a component on", function()
    assert.same({ enabled = false, capacity = livedebug.DEFAULT_CAPACITY, samples = 0, batches = 0, seq = 0 },
      livedebug.status("c"))
    local saved = livedebug.IDLE_OFF
    livedebug.IDLE_OFF = -1
    livedebug.set("c", { enabled = true, capacity = 7 })
    livedebug.IDLE_OFF = saved
    assert.same({ enabled = true, capacity = 7, samples = 0, batches = 0, seq = 0 }, livedebug.status("c"))
    capture("x 1\n") -- expired: status did not renew it
    assert.is_false(livedebug.status("c").enabled)
    assert.equals(0, livedebug.status("c").samples)
  end)

  it("switches itself off when nobody reads it", function()
    local saved = livedebug.IDLE_OFF
    livedebug.IDLE_OFF = -1
    livedebug.set("c", { enabled = true })
    livedebug.IDLE_OFF = saved
    capture("x 1\n")
    assert.is_nil(livedebug.on.c)
    assert.is_false(livedebug.get("c").enabled)
    assert.same({}, livedebug.get("c").entries)
  end)

  it("refuses bad settings", function()
    for _, opts in ipairs({ { capacity = 0 }, { capacity = livedebug.MAX_CAPACITY + 1 }, { capacity = 1.5 },
      { capacity = "3" }, { enabled = "yes" } }) do
      local st, err = livedebug.set("c", opts)
      assert.is_nil(st)
      assert.is_string(err)
    end
    assert.is_nil(livedebug.on.c)
  end)

  it("writes values as the shortest text that reads back", function()
    assert.equals("0.1", livedebug.format_value(0.1))
    assert.equals("1e+300", livedebug.format_value(1e300))
    assert.equals("+Inf", livedebug.format_value(math.huge))
    assert.equals("NaN", livedebug.format_value(0 / 0))
    assert.equals("0.30000000000000004", livedebug.format_value(0.1 + 0.2))
  end)
end)
