-- End-to-end: scale-out by hashmod sharding (moonwatch.sharding's hashmod_shard helper).
-- 30 HTTP targets on distinct loopback addresses (fixtures/many_targets.lua). First a real
-- Prometheus computes hashmod for them (modulus 3, 2 and 1000 over two joined labels) and
-- discovery.relabel must give the same values. Then 3 moonwatch instances named as a
-- StatefulSet names its pods (HOSTNAME=moonwatch-N, MOONWATCH_REPLICAS=3) scrape with
-- `rule = hashmod_shard {}`: every target is scraped by exactly one of them, the one
-- Prometheus's hash names; scaled to 2 replicas, the targets move and are still each scraped
-- by exactly one.
local proc = require("helpers.proc")
local cjson = require("cjson")

local N = 30
local tmp = proc.tmpdir()

local function addresses(port)
  local out = {}
  for i = 1, N do
    out[i] = string.format("127.0.0.%d:%d", i, port)
  end
  return out
end

local function get_json(url)
  local status, body = proc.http("GET", url)
  assert.equals(200, status, body)
  return cjson.decode(body)
end

-- The targets an instance's prometheus.scrape "shard" has scraped successfully: { [address] = true }, count.
local function scraped(h)
  local info = get_json(h.base .. "/api/v0/components/prometheus.scrape.shard").debug_info
  local set, n, pending = {}, 0, 0
  for _, t in ipairs(info.targets or {}) do
    if t.health == "up" then
      set[t.labels.instance] = true
      n = n + 1
    else
      pending = pending + 1
    end
  end
  return set, n, pending
end

local PIPELINE = [[
local targets = {}
for i = 1, 30 do
  targets[i] = { __address__ = string.format("127.0.0.%d:%s", i, env("TARGET_PORT")) }
end
discovery.relabel "shard" {
  targets = targets,
  rule    = hashmod_shard {},
}
prometheus.scrape "shard" {
  targets         = discovery.relabel.shard.output,
  forward_to      = {},
  scrape_interval = "1s",
  scrape_timeout  = "1s",
}
]]

describe("hashmod sharding", function()
  local port, fixture_pid, prometheus_pid
  local expected = {} -- address -> { shard3, shard2, shard1000 } as Prometheus computes them
  local instances = {}

  setup(function()
    port, fixture_pid = proc.start_server(string.format("%s lua %s/tests/e2e/fixtures/many_targets.lua %%d %d",
      proc.quote(proc.bin), proc.quote(proc.source), N),
      "curl -s -m 1 http://127.0.0.30:%d/metrics | grep -q shard_target && echo ok")
  end)
  teardown(function()
    for _, h in pairs(instances) do
      h.kill("KILL")
    end
    if prometheus_pid then
      os.execute("kill " .. prometheus_pid .. " 2>/dev/null")
    end
    if fixture_pid then
      os.execute("kill " .. fixture_pid .. " 2>/dev/null")
    end
  end)

  it("hashmod gives the values Prometheus gives (md5, last 8 bytes big-endian, mod N)", function()
    local addrs = addresses(port)
    local dir = tmp .. "/prometheus"
    os.execute("mkdir -p " .. dir)
    local quoted = {}
    for i, a in ipairs(addrs) do
      quoted[i] = '"' .. a .. '"'
    end
    proc.write(dir .. "/prometheus.yml", table.concat({
      "global: { scrape_interval: 1h }",
      "scrape_configs:",
      "  - job_name: shard",
      "    static_configs: [{ targets: [" .. table.concat(quoted, ", ") .. "] }]",
      "    relabel_configs:",
      "      - { source_labels: [__address__], modulus: 3, target_label: shard3, action: hashmod }",
      "      - { source_labels: [__address__], modulus: 2, target_label: shard2, action: hashmod }",
      "      - { source_labels: [__address__, job], modulus: 1000, target_label: shard1000, action: hashmod }",
      "",
    }, "\n"))
    local pport = proc.free_port()
    prometheus_pid = proc.spawn(string.format("prometheus --config.file=%s/prometheus.yml --storage.tsdb.path=%s/data "
      .. "--web.listen-address=127.0.0.1:%d", dir, dir, pport), dir .. "/log")
    proc.wait_http("http://127.0.0.1:" .. pport .. "/-/ready")
    -- the scrape manager applies its targets within 5 s of the start
    proc.wait_for(function()
      local ok, doc = pcall(get_json, "http://127.0.0.1:" .. pport .. "/api/v1/targets?state=active")
      return ok and #doc.data.activeTargets == N
    end, 20, "Prometheus's 30 targets")
    for _, t in ipairs(get_json("http://127.0.0.1:" .. pport .. "/api/v1/targets?state=active").data.activeTargets) do
      expected[t.labels.instance] = { t.labels.shard3, t.labels.shard2, t.labels.shard1000 }
    end
    os.execute("kill " .. prometheus_pid)
    prometheus_pid = nil

    local f = proc.write(tmp .. "/hashmod.lua", string.format([[
local targets = {}
for i = 1, 30 do
  targets[i] = { __address__ = string.format("127.0.0.%%d:%d", i), job = "shard" }
end
discovery.relabel "h" {
  targets = targets,
  rule = {
    { source_labels = { "__address__" }, modulus = 3, target_label = "shard3", action = "hashmod" },
    { source_labels = { "__address__" }, modulus = 2, target_label = "shard2", action = "hashmod" },
    { source_labels = { "__address__", "job" }, modulus = 1000, target_label = "shard1000", action = "hashmod" },
  },
}
]], port))
    local h = proc.start_run(f)
    local out = get_json(h.base .. "/api/v0/components/discovery.relabel.h").exports.output
    h.kill("TERM")
    assert.equals(0, h.wait(10))
    local got = {}
    for _, t in ipairs(out) do
      got[t.__address__] = { t.shard3, t.shard2, t.shard1000 }
    end
    assert.same(expected, got)
    assert.equals(N, #proc.sorted_keys(got))
  end)

  local function start_replicas(n)
    local f = proc.write(tmp .. "/shard.lua", PIPELINE)
    for k = 0, n - 1 do
      instances[k] = proc.start_run(f, { "--storage.path=" .. tmp .. "/data-" .. k },
        { env = string.format("HOSTNAME=moonwatch-%d MOONWATCH_REPLICAS=%d TARGET_PORT=%d", k, n, port) })
    end
    -- every replica has scraped each of its targets (and has none failing)
    local sets = {}
    proc.wait_for(function()
      local total = 0
      for k = 0, n - 1 do
        local set, count, pending = scraped(instances[k])
        if pending > 0 then
          return false
        end
        sets[k] = set
        total = total + count
      end
      return total >= N
    end, 20, "every target scraped")
    return sets
  end

  local function stop_replicas()
    for k, h in pairs(instances) do
      h.kill("TERM")
      assert.equals(0, h.wait(10))
      instances[k] = nil
    end
  end

  -- Every address in exactly one set; returns address -> shard.
  local function assert_exactly_once(sets, n)
    local owner = {}
    for k = 0, n - 1 do
      for a in pairs(sets[k]) do
        assert.is_nil(owner[a], a .. " scraped by replicas " .. tostring(owner[a]) .. " and " .. k)
        owner[a] = k
      end
    end
    for _, a in ipairs(addresses(port)) do
      assert.is_not_nil(owner[a], a .. " scraped by no replica")
    end
    assert.equals(N, #proc.sorted_keys(owner))
    return owner
  end

  it("3 replicas scrape 30 targets, each by exactly one; at 2 replicas the targets move, still once each; "
    .. "back at 3 each target returns to its replica", function()
    local owner3 = assert_exactly_once(start_replicas(3), 3)
    for a, k in pairs(owner3) do
      if expected[a] then -- the previous test's Prometheus values, when it ran
        assert.equals(expected[a][1], tostring(k), a)
      end
    end
    stop_replicas()

    local owner2 = assert_exactly_once(start_replicas(2), 2)
    local moved = 0
    for a, k in pairs(owner2) do
      if expected[a] then
        assert.equals(expected[a][2], tostring(k), a)
      end
      if owner3[a] ~= k then
        moved = moved + 1
      end
    end
    -- replica 2's targets all moved; hashmod 2 and 3 disagree on others too
    assert.is_true(moved >= 1)
    for a, k in pairs(owner3) do
      if k == 2 then
        assert.is_true(owner2[a] == 0 or owner2[a] == 1)
      end
    end
    stop_replicas()

    -- scaling up again: the third replica takes its targets back, nothing is scraped twice
    local again = assert_exactly_once(start_replicas(3), 3)
    assert.same(owner3, again)
    stop_replicas()
  end)

  it("hashmod_shard's problems are reported by check with file:line", function()
    local f = proc.write(tmp .. "/shard-check.lua", [[
discovery.relabel "a" {
  targets = {},
  rule = hashmod_shard {},
}
]])
    local cases = {
      { "", "replicas: not given, and MOONWATCH_REPLICAS is not set (set it to the StatefulSet's replicas)" },
      { "MOONWATCH_REPLICAS=3 HOSTNAME=collector", 'ordinal: not given, MOONWATCH_ORDINAL is not set, and the host '
        .. 'name "collector" does not end in -N as a StatefulSet pod\'s does' },
      { "MOONWATCH_REPLICAS=3 HOSTNAME=moonwatch-3", "ordinal 3 is not below replicas 3: replica 3 would scrape nothing" },
      { "MOONWATCH_REPLICAS=three HOSTNAME=moonwatch-0",
        "replicas: expected a non-negative integer, got string three (from MOONWATCH_REPLICAS)" },
      { "MOONWATCH_REPLICAS=0 HOSTNAME=moonwatch-0", "replicas: must be at least 1, got 0" },
    }
    for _, c in ipairs(cases) do
      local code, out, err = proc.run({ "check", f }, { env = "env -u MOONWATCH_ORDINAL -u MOONWATCH_REPLICAS " .. c[1] })
      assert.equals(1, code, out .. err)
      assert.equals(f .. ":3: hashmod_shard: " .. c[2] .. "\n", err)
    end
    -- the ordinal from MOONWATCH_ORDINAL (e.g. the pod-index label through the downward API)
    local code, out, err = proc.run({ "check", f }, { env = "MOONWATCH_REPLICAS=3 MOONWATCH_ORDINAL=2 HOSTNAME=x" })
    assert.equals(0, code, out .. err)
  end)
end)
