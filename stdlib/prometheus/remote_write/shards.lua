--- prometheus.remote_write.shards: how many shards a prometheus.remote_write endpoint
--- should send with (a helper of that folder component), as Prometheus's remote-write QueueManager decides it.
-- Every UPDATE_INTERVAL seconds (Prometheus's shardUpdateDuration, 10 s) the
-- counts of that interval (samples in, samples out, samples dropped, seconds
-- spent sending) are folded into exponentially weighted rates; then
--
--   time_per_sample = send seconds per second / samples out per second
--   kept_ratio      = out / (out + dropped)
--   pending         = delay * in * kept_ratio    (delay: newest appended - newest sent, s)
--   desired         = time_per_sample * (in * kept_ratio + 0.05 * pending)
--
-- so the shards keep up with what comes in and catch up on 5% of the backlog
-- per second. The shard count changes only when ceil(desired) is more than
-- 30% away from it, never down while more than 10 s behind, never while the
-- last request finished more than twice batch_send_deadline ago (retries do
-- not finish a request), and stays in [min_shards, max_shards].
local M = {}

--- Seconds between updates; MOONWATCH_REMOTE_WRITE_SHARD_UPDATE_INTERVAL overrides it (tests).
M.UPDATE_INTERVAL = tonumber(os.getenv("MOONWATCH_REMOTE_WRITE_SHARD_UPDATE_INTERVAL") or "") or 10

local EWMA_WEIGHT = 0.2
local TOLERANCE = 0.3
local BACKLOG_CATCHUP = 0.05
local MAX_DELAY_TO_DOWNSHARD = 10

-- An exponentially weighted rate of events counted over fixed intervals.
local Rate = {}
Rate.__index = Rate

local function new_rate(interval)
  return setmetatable({ interval = interval, count = 0, value = 0, started = false }, Rate)
end

function Rate:add(n)
  self.count = self.count + n
end

function Rate:tick()
  local instant = self.count / self.interval
  self.count = 0
  if self.started then
    self.value = self.value + EWMA_WEIGHT * (instant - self.value)
  elseif instant > 0 then
    self.started = true
    self.value = instant
  end
end

local Shards = {}
Shards.__index = Shards

--- A shard calculator starting at min_shards.
---@param cfg table { min_shards, max_shards, batch_send_deadline (s) }
---@param interval number|nil seconds between ticks (M.UPDATE_INTERVAL)
function M.new(cfg, interval)
  interval = interval or M.UPDATE_INTERVAL
  local self = setmetatable({
    interval = interval, rate_in = new_rate(interval), rate_out = new_rate(interval),
    rate_dropped = new_rate(interval), rate_duration = new_rate(interval),
  }, Shards)
  self:configure(cfg)
  self.shards = cfg.min_shards
  self.desired = cfg.min_shards
  return self
end

--- New limits (a config update); the current count is clamped to them.
function Shards:configure(cfg)
  self.min, self.max, self.deadline = cfg.min_shards, cfg.max_shards, cfg.batch_send_deadline
  if self.shards then
    self.shards = math.max(self.min, math.min(self.max, self.shards))
  end
end

--- Samples appended (that this endpoint will read).
function Shards:samples_in(n)
  self.rate_in:add(n)
end

--- Samples dropped before a send (relabeling, age, max_keepalive_time).
function Shards:samples_dropped(n)
  self.rate_dropped:add(n)
end

--- A request finished (sent, or given up): its samples and the seconds its sends and retries took.
---@param now number monotonic seconds
function Shards:request_done(samples, seconds, now)
  self.rate_out:add(samples)
  self.rate_duration:add(seconds)
  self.last_done = now
end

--- Folds the interval's counts into the rates and computes the desired shards.
---@param delay number seconds between the newest sample appended and the newest sent
---@param now number monotonic seconds
---@return integer shards to use from now on
function Shards:tick(delay, now)
  self.rate_in:tick()
  self.rate_out:tick()
  self.rate_dropped:tick()
  self.rate_duration:tick()
  local rin, rout, rdropped = self.rate_in.value, self.rate_out.value, self.rate_dropped.value
  if rout <= 0 then
    return self.shards
  end
  local kept = rout / (rout + rdropped)
  local pending = math.max(delay, 0) * rin * kept
  local time_per_sample = self.rate_duration.value / rout
  local desired = time_per_sample * (rin * kept + BACKLOG_CATCHUP * pending)
  self.desired = desired
  local n = math.ceil(desired)
  if n >= self.shards * (1 - TOLERANCE) and n <= self.shards * (1 + TOLERANCE) then
    return self.shards
  end
  if n < self.shards and delay > MAX_DELAY_TO_DOWNSHARD then
    return self.shards
  end
  n = math.max(self.min, math.min(self.max, n))
  -- no resharding while requests do not finish (the remote end fails): more shards would not help
  if n ~= self.shards and (not self.last_done or now - self.last_done > 2 * self.deadline) then
    return self.shards
  end
  self.shards = n
  return n
end

return M
