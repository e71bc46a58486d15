-- The log-entry batch (moonwatch.batch.logs over runtime/model/logbatch.c): what a logs
-- receiver reads back is exactly what the producer added.
local logs = require("moonwatch.batch.logs")

describe("moonwatch.batch.logs", function()
  it("keeps entries in order with their stream, exact nanosecond timestamp, bytes and metadata", function()
    local b = logs.new()
    logs.add(b, { job = "app", env = "prod" }, 1700000000, 123456789, "GET / 200", { trace_id = "abc" })
    logs.add(b, { job = "db" }, 1700000001, 999999999, "a\0b\255\n")
    logs.add(b, { env = "prod", job = "app" }, 1, 0, "")
    assert.equal(3, logs.len(b))
    assert.equal(2, logs.streams(b)) -- the label order does not make a new stream
    assert.equal(9 + 5, logs.bytes(b))
    local got = {}
    for i, e in logs.entries(b) do
      got[#got + 1] = { i, e.stream, e.labels.job, e.sec, e.nsec, e.line, e.metadata.trace_id }
    end
    assert.same({
      { 0, 0, "app", 1700000000, 123456789, "GET / 200", "abc" },
      { 1, 1, "db", 1700000001, 999999999, "a\0b\255\n", nil },
      { 2, 0, "app", 1, 0, "", nil },
    }, got)
    assert.equal("1700000000123456789LL", tostring(logs.entry(b, 0).ts))
  end)

  it("drops empty label values and refuses a bad label set, naming it", function()
    local b = logs.new()
    assert.equal(0, logs.stream(b, { job = "a", empty = "" }))
    assert.same({ job = "a" }, logs.stream_labels(b, 0))
    assert.equal(0, logs.stream(b, { job = "a" }))
    assert.has_error(function() logs.stream(b, { ["bad\255"] = "x" }) end)
    assert.has_error(function() logs.add(b, { job = 1 }, 1, 0, "x") end,
      "labels: names and values must be strings (job = number)")
    assert.has_error(function() logs.add(b, 5, 1, 0, "x") end)
    assert.has_error(function() logs.add(b, 0, 1, 1e9, "x") end,
      "timestamp: expected whole seconds and nanoseconds in [0, 999999999]")
  end)

  it("takes an empty label set and empty lines in an empty batch (no arithmetic on a NULL buffer)", function()
    local b = logs.new()
    logs.add(b, {}, 1, 0, "")
    logs.add(b, {}, 2, 0, "")
    assert.equal(1, logs.streams(b))
    assert.same({}, logs.stream_labels(b, 0))
    assert.same({ "", "" }, { logs.entry(b, 0).line, logs.entry(b, 1).line })
  end)

  it("empties on reset and keeps working with many streams", function()
    local b = logs.new()
    for i = 1, 5000 do
      logs.add(b, { n = tostring(i % 1000) }, i, 0, "line " .. i)
    end
    assert.equal(5000, logs.len(b))
    assert.equal(1000, logs.streams(b))
    assert.equal("7", logs.entry(b, 4006).labels.n)
    logs.reset(b)
    assert.equal(0, logs.len(b))
    assert.equal(0, logs.streams(b))
    logs.add(b, { n = "x" }, 2, 5, "again")
    assert.same({ n = "x" }, logs.entry(b, 0).labels)
  end)
end)
