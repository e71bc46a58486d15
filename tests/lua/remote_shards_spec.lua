-- prometheus.remote_write.shards (a helper of the folder component): the desired shard
-- count of a remote_write endpoint, as Prometheus's QueueManager computes it. Required
-- by its path on the component path, as the component requires it.
require("moonwatch.registry").find("prometheus.remote_write", { (os.getenv("MOONWATCH_SOURCE_DIR") or ".") .. "/stdlib" })
local remote_shards = require("prometheus.remote_write.shards")

local CFG = { min_shards = 1, max_shards = 10, batch_send_deadline = 5 }

-- One 10 s interval: samples in per second, requests of `per_req` samples taking `secs` each,
-- out per second; returns the new shard count.
local function interval(s, now, rin, rout, per_req, secs, delay, dropped)
  s:samples_in(rin * 10)
  s:samples_dropped((dropped or 0) * 10)
  local reqs = rout * 10 / per_req
  for _ = 1, reqs do
    s:request_done(per_req, secs, now)
  end
  return s:tick(delay or 0, now)
end

describe("prometheus.remote_write.shards", function()
  it("starts at min_shards and keeps it while nothing was sent", function()
    local s = remote_shards.new({ min_shards = 2, max_shards = 10, batch_send_deadline = 5 }, 10)
    assert.equals(2, s.shards)
    s:samples_in(1000)
    assert.equals(2, s:tick(0, 10))
  end)

  it("adds shards when sending takes longer than what comes in allows", function()
    local s = remote_shards.new(CFG, 10)
    -- 400 samples/s in, one shard sends 200/s (0.25 s per 50 samples): 2 shards keep up,
    -- a second behind asks for 5% of the backlog more
    assert.equals(3, interval(s, 10, 400, 200, 50, 0.25, 1))
    assert.is_true(math.abs(s.desired - 0.005 * (400 + 0.05 * 400)) < 1e-9, s.desired)
  end)

  it("counts dropped samples out of what needs sending", function()
    local s = remote_shards.new(CFG, 10)
    -- half of what comes in is dropped: 200/s to send at 0.005 s each is one shard
    interval(s, 10, 400, 200, 50, 0.25, 0, 200)
    assert.is_true(math.abs(s.desired - 0.005 * 400 * 0.5) < 1e-9, s.desired)
    assert.equals(1, s.shards)
  end)

  it("does not change within 30%, clamps to max_shards, never downshards more than 10 s behind", function()
    local s = remote_shards.new(CFG, 10)
    assert.equals(10, interval(s, 10, 40000, 200, 50, 0.25, 0)) -- desires 200
    -- a smaller load: 8 shards are within 30% of 10
    local t = remote_shards.new(CFG, 10)
    t.shards = 10
    assert.equals(10, interval(t, 10, 1600, 1600, 50, 0.25, 0))
    -- 1 shard is enough, but 20 s behind: stays
    local u = remote_shards.new(CFG, 10)
    u.shards = 10
    assert.equals(10, interval(u, 10, 10, 10, 10, 0.01, 20))
    assert.equals(1, interval(u, 20, 10, 10, 10, 0.01, 0))
  end)

  it("does not reshard while no request finishes (the remote end fails)", function()
    local s = remote_shards.new(CFG, 10)
    interval(s, 10, 400, 200, 50, 0.25, 0)
    local before = s.shards
    s:samples_in(40000)
    -- the last request finished 20 s ago: more than twice batch_send_deadline
    assert.equals(before, s:tick(0, 30))
  end)

  it("follows config updates", function()
    local s = remote_shards.new(CFG, 10)
    s.shards = 8
    s:configure({ min_shards = 1, max_shards = 4, batch_send_deadline = 5 })
    assert.equals(4, s.shards)
  end)
end)
