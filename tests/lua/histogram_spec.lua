-- histogram_spec: native histograms in samples batches as Lua components see them
-- (moonwatch.batch.samples: new, add, add_histogram, histograms).
local samples = require("moonwatch.batch.samples")

describe("samples batch histogram column", function()
  it("keeps integer, float, custom-bucket and stale histograms with their series", function()
    local b = samples.new()
    samples.add(b, { __name__ = "up", job = "a" }, 1000, 1)
    samples.add_histogram(b, { __name__ = "rpc", job = "a" }, 2000, {
      schema = 3, zero_threshold = 0.001, zero_count = 4, count = 15, sum = 42.5,
      positive_spans = { { offset = 0, length = 2 }, { offset = 2, length = 1 } },
      positive_deltas = { 2, 1, -2 },
      negative_spans = { { -2, 1 } }, negative_deltas = { 5 }, reset_hint = "no" })
    samples.add_histogram(b, { __name__ = "lat", job = "a" }, 3000, {
      float = true, schema = -53, count = 2.5, sum = 1.25, custom_values = { 0.1, 1, 10 },
      positive_spans = { { 1, 2 } }, positive_counts = { 1.5, 1 }, reset_hint = "gauge" })
    samples.add_histogram(b, { __name__ = "rpc", job = "a" }, 4000, { stale = true })
    assert.equals(1, samples.len(b))
    assert.equals(3, samples.histogram_count(b))
    local hs = samples.histograms(b)
    assert.same({ __name__ = "rpc", job = "a" }, hs[1].labels)
    assert.equals(2000, hs[1].ts)
    assert.is_false(hs[1].float)
    assert.equals(3, hs[1].schema)
    assert.equals(15, hs[1].count)
    assert.equals(4, hs[1].zero_count)
    assert.equals(42.5, hs[1].sum)
    assert.equals("no", hs[1].reset_hint)
    assert.same({ { offset = 0, length = 2 }, { offset = 2, length = 1 } }, hs[1].positive_spans)
    assert.same({ 2, 1, -2 }, hs[1].positive_deltas)
    assert.same({ { offset = -2, length = 1 } }, hs[1].negative_spans)
    assert.same({ 5 }, hs[1].negative_deltas)
    assert.is_false(hs[1].stale)
    assert.is_true(hs[2].float)
    assert.equals(-53, hs[2].schema)
    assert.same({ 0.1, 1, 10 }, hs[2].custom_values)
    assert.same({ 1.5, 1 }, hs[2].positive_counts)
    assert.equals("gauge", hs[2].reset_hint)
    assert.is_true(hs[3].stale)
    assert.equals(hs[1].ref, hs[3].ref)
    assert.equals(4000, hs[3].ts)
  end)

  it("refuses a histogram that is not one, saying where", function()
    local b = samples.new()
    local ok, err = pcall(samples.add_histogram, b, { __name__ = "h" }, 1, {
      schema = 0, count = 3, positive_spans = { { 0, 3 } }, positive_deltas = { 1, 1 } })
    assert.is_false(ok)
    assert.matches("histogram: positive side: spans need 3 buckets, have 2 buckets", err, 1, true)
    ok, err = pcall(samples.add_histogram, b, { __name__ = "h" }, 1, { schema = 12 })
    assert.is_false(ok)
    assert.matches("schema 12", err, 1, true)
    ok, err = pcall(samples.add_histogram, b, { __name__ = "h" }, 1, { reset_hint = "maybe" })
    assert.is_false(ok)
    assert.matches("reset_hint", err, 1, true)
    assert.equals(0, samples.histogram_count(b))
  end)
end)
