-- moonwatch.push_endpoint's backoff: the delays and the attempts of dskit's backoff, which
-- Alloy's loki.write retries with (min_backoff_period, max_backoff_period, max_backoff_retries).
local push_endpoint = require("moonwatch.push_endpoint")

-- The delays of a backoff until it gives up (at most limit of them), and how many failed
-- attempts it counted.
local function delays(min, max, retries, limit)
  local b, out = push_endpoint.new_backoff(min, max, retries), {}
  for _ = 1, limit or 1000 do
    local d = b:next()
    if not d then
      break
    end
    out[#out + 1] = d
  end
  return out, b.failures
end

describe("push_endpoint.new_backoff", function()
  it("gives max_retries attempts in all: max_retries - 1 waits, as Alloy's default 10 (0.5s ... 256s)", function()
    for _ = 1, 50 do
      local list, failures = delays(0.5, 300, 10)
      assert.equals(9, #list)
      assert.equals(10, failures)
      for k, d in ipairs(list) do
        -- the k-th wait is drawn in [min 2^(k-1), min 2^k)
        local lo = 0.5 * 2 ^ (k - 1)
        assert.is_true(d >= lo and d < 2 * lo, k .. ": " .. d)
      end
    end
    local list, failures = delays(0.5, 300, 1)
    assert.same({}, list)
    assert.equals(1, failures)
  end)

  it("keeps its waits below max_backoff_period once the range reaches it, and retries forever with 0", function()
    local seen_high = false
    for _ = 1, 50 do
      local list = delays(0.05, 0.2, 0, 40)
      assert.equals(40, #list)
      assert.is_true(list[1] >= 0.05 and list[1] < 0.1)
      for k = 2, 40 do
        -- [0.1, 0.2) once the upper end reached max: the lower end stays where it was
        assert.is_true(list[k] >= 0.1 and list[k] < 0.2, k .. ": " .. list[k])
        seen_high = seen_high or list[k] > 0.15
      end
    end
    assert.is_true(seen_high)
    -- an odd max: the range is cut to it, never past it
    for _, d in ipairs((delays(1, 3, 0, 20))) do
      assert.is_true(d >= 1 and d < 3, d)
    end
  end)

  it("waits min every time when min equals max", function()
    assert.same({ 2, 2, 2, 2 }, (delays(2, 2, 5)))
  end)
end)
