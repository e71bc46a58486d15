-- End-to-end: prometheus.exporter.unix against the real node_exporter (Debian's
-- prometheus-node-exporter 1.5.x) on the same host with the same collectors:
-- per collector the same families, label sets, HELP and TYPE; static values
-- equal, counters between two node_exporter scrapes taken around ours, other
-- gauges within a tolerance.
local proc = require("helpers.proc")

local NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
local tmp = proc.tmpdir()

-- Collector -> Lua patterns of the families it owns (looked at in name order: netclass's
-- node_network_* before netdev's).
local COLLECTORS = {
  arp = { "^node_arp_" },
  conntrack = { "^node_nf_conntrack_" },
  cpu = { "^node_cpu_seconds_total$", "^node_cpu_guest_seconds_total$", "^node_cpu_.*throttles_total$",
    "^node_cpu_isolated$" },
  cpufreq = { "^node_cpu_.*frequency" },
  diskstats = { "^node_disk_" },
  entropy = { "^node_entropy_" },
  filefd = { "^node_filefd_" },
  filesystem = { "^node_filesystem_" },
  hwmon = { "^node_hwmon_" },
  loadavg = { "^node_load%d+$" },
  mdadm = { "^node_md_" },
  meminfo = { "^node_memory_" },
  netclass = { "^node_network_up$", "^node_network_info$", "^node_network_speed_bytes$", "^node_network_mtu_bytes$",
    "^node_network_carrier", "^node_network_address_assign_type$", "^node_network_device_id$",
    "^node_network_dormant$", "^node_network_flags$", "^node_network_iface_", "^node_network_name_assign_type$",
    "^node_network_net_dev_group$", "^node_network_protocol_type$", "^node_network_transmit_queue_length$" },
  netdev = { "^node_network_" },
  netstat = { "^node_netstat_" },
  nfs = { "^node_nfs_" },
  nfsd = { "^node_nfsd_" },
  os = { "^node_os_" },
  powersupplyclass = { "^node_power_supply_" },
  pressure = { "^node_pressure_" },
  schedstat = { "^node_schedstat_" },
  selinux = { "^node_selinux_" },
  sockstat = { "^node_sockstat_" },
  softnet = { "^node_softnet_" },
  stat = { "^node_intr_total$", "^node_context_switches_total$", "^node_forks_total$",
    "^node_boot_time_seconds$", "^node_procs_" },
  textfile = { "^node_textfile_" },
  thermal_zone = { "^node_thermal_zone_", "^node_cooling_device_" },
  time = { "^node_time_" },
  timex = { "^node_timex_" },
  udp_queues = { "^node_udp_queues$" },
  uname = { "^node_uname_info$" },
  vmstat = { "^node_vmstat_" },
  xfs = { "^node_xfs_" },
}
local NAMES = {}
for c in pairs(COLLECTORS) do
  NAMES[#NAMES + 1] = c
end
table.sort(NAMES)

-- Values that must be equal (static on a running host).
local STATIC = {
  node_memory_MemTotal_bytes = true, node_memory_SwapTotal_bytes = true, node_boot_time_seconds = true,
  node_filesystem_size_bytes = true, node_filesystem_files = true, node_filesystem_readonly = true,
  node_filesystem_device_error = true, node_uname_info = true, node_os_info = true, node_os_version = true,
  node_disk_info = true, node_entropy_pool_size_bits = true, node_filefd_maximum = true,
  node_nf_conntrack_entries_limit = true, node_time_clocksource_available_info = true,
  node_time_clocksource_current_info = true, node_time_zone_offset_seconds = true,
  node_timex_tick_seconds = true, node_timex_status = true, node_memory_Hugepagesize_bytes = true,
  node_scrape_collector_success = true, node_netstat_Ip_Forwarding = true,
  node_network_info = true, node_network_mtu_bytes = true, node_network_speed_bytes = true, node_network_up = true,
  node_network_flags = true, node_network_iface_id = true, node_network_protocol_type = true,
  node_selinux_enabled = true, node_textfile_scrape_error = true,
}
-- Gauges too volatile for more than a sanity check.
local VOLATILE = {
  node_scrape_collector_duration_seconds = true, node_procs_running = true, node_procs_blocked = true,
  node_load1 = true, node_load5 = true, node_load15 = true, node_entropy_available_bits = true,
  node_arp_entries = true,
}

local MOUNTS_EXCLUDE = "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"

-- Parses a text 0.0.4 body: families[name] = { help, type, series = { [labels] = value } }.
local function parse(body)
  local fams = {}
  local function fam(name)
    fams[name] = fams[name] or { series = {} }
    return fams[name]
  end
  for line in body:gmatch("[^\n]+") do
    local name, help = line:match("^# HELP (%S+) (.*)$")
    if name then
      fam(name).help = help
    else
      local tname, typ = line:match("^# TYPE (%S+) (%S+)$")
      if tname then
        fam(tname).type = typ
      elseif line:sub(1, 1) ~= "#" then
        local series, value = line:match("^(.-) (%S+)$")
        local sname, labels = series:match("^([^{]+)(.*)$")
        fam(sname).series[labels] = tonumber(value) or (value == "NaN" and 0 / 0) or tonumber(value:gsub("Inf", "inf"))
      end
    end
  end
  return fams
end

local free_port = proc.free_port

local function owner(name)
  for _, c in ipairs(NAMES) do
    for _, pat in ipairs(COLLECTORS[c]) do
      if name:match(pat) then
        return c
      end
    end
  end
end

local keys = proc.sorted_keys

describe("prometheus.exporter.unix against node_exporter 1.5", function()
  local mw, ne_pid, ne1, ours, ne2

  setup(function()
    assert(io.open(NODE_EXPORTER), "prometheus-node-exporter is not installed (make deps-test)")
    local cols = {}
    for _, c in ipairs(NAMES) do
      cols[#cols + 1] = string.format("%q", c)
    end
    local pipeline = proc.write(tmp .. "/pipeline.lua", string.format(
      -- cpu.guest as node_exporter's default (Alloy's is off)
      'prometheus.exporter.unix "host" {\n  set_collectors = { %s },\n  cpu = { guest = true },\n}\n',
      table.concat(cols, ", ")))
    mw = proc.start_run(pipeline, { "--storage.path=" .. tmp .. "/data" })

    local port = free_port()
    local args = { "--web.listen-address=127.0.0.1:" .. port, "--collector.disable-defaults",
      "--web.disable-exporter-metrics", "--collector.filesystem.mount-points-exclude=" .. MOUNTS_EXCLUDE,
      "--collector.netdev.device-exclude=", "--collector.textfile.directory=" }
    for _, c in ipairs(NAMES) do
      args[#args + 1] = "--collector." .. c
    end
    for i, a in ipairs(args) do
      args[i] = proc.quote(a)
    end
    local pidfile = tmp .. "/ne.pid"
    os.execute(string.format("(sh -c 'echo $$ > %s; exec \"$@\"' sh %s %s >%s/ne.log 2>&1 </dev/null &)",
      pidfile, NODE_EXPORTER, table.concat(args, " "), tmp))
    local url = "http://127.0.0.1:" .. port .. "/metrics"
    for _ = 1, 100 do
      local status = proc.http("GET", url)
      if status == 200 then
        break
      end
      os.execute("sleep 0.05")
    end
    for _ = 1, 100 do -- the pid file is written before exec: it is there once the server answers
      local f = io.open(pidfile)
      ne_pid = f and tonumber(f:read("*l") or "")
      if f then
        f:close()
      end
      if ne_pid then
        break
      end
      os.execute("sleep 0.05")
    end
    assert(ne_pid, "node_exporter did not start")
    -- node_exporter, ours, node_exporter: counters of ours lie between the two
    local status, body = proc.http("GET", url)
    assert.equals(200, status)
    ne1 = parse(body)
    status, body = proc.http("GET", mw.base .. "/api/v0/component/prometheus.exporter.unix.host/metrics")
    assert.equals(200, status)
    ours = parse(body)
    status, body = proc.http("GET", url)
    assert.equals(200, status)
    ne2 = parse(body)
  end)

  teardown(function()
    if ne_pid then
      os.execute("kill " .. ne_pid .. " 2>/dev/null")
    end
    if mw then
      mw.kill("TERM")
      mw.wait(10)
    end
    os.execute("rm -rf " .. proc.quote(tmp))
  end)

  it("has no family that node_exporter's collectors do not have, and vice versa", function()
    for name in pairs(ne1) do
      -- node_exporter_build_info stays even with --web.disable-exporter-metrics
      if not name:match("^promhttp_") and not name:match("^node_scrape_collector_")
        and name ~= "node_exporter_build_info" then
        assert.is_truthy(owner(name), "node_exporter family not mapped to a collector: " .. name)
        assert.is_truthy(ours[name], "missing family " .. name)
      end
    end
    for name in pairs(ours) do
      if not name:match("^node_scrape_collector_") then
        assert.is_truthy(ne1[name], "family node_exporter does not have: " .. name)
      end
    end
  end)

  it("reports the same collectors with the same success", function()
    assert.same(keys(ne1.node_scrape_collector_success.series), keys(ours.node_scrape_collector_success.series))
    assert.same(ne1.node_scrape_collector_success.series, ours.node_scrape_collector_success.series)
    assert.same(keys(ne1.node_scrape_collector_duration_seconds.series),
      keys(ours.node_scrape_collector_duration_seconds.series))
    assert.equals(ne1.node_scrape_collector_success.help, ours.node_scrape_collector_success.help)
  end)

  for _, collector in ipairs(NAMES) do
    it("matches node_exporter for collector " .. collector, function()
      local checked, theirs = 0, 0
      for _, name in ipairs(keys(ne1)) do
        if owner(name) == collector then
          local a, b, c = ne1[name], ours[name], ne2[name]
          theirs = theirs + #keys(a.series)
          assert.is_truthy(b, "missing family " .. name)
          assert.equals(a.help, b.help, name .. " HELP")
          assert.equals(a.type, b.type, name .. " TYPE")
          local want, got = keys(a.series), keys(b.series)
          if name == "node_time_zone_offset_seconds" or STATIC[name] or #want == #keys(c.series) then
            assert.same(want, got, name .. " label sets")
          end
          for labels, v in pairs(b.series) do
            local lo, hi = a.series[labels], c.series[labels]
            local id = name .. labels
            assert.is_truthy(lo and hi, "series node_exporter lacks: " .. id)
            if STATIC[name] then
              assert.equals(lo, v, id)
            elseif name == "node_time_seconds" then
              assert.is_true(v >= lo - 0.001 and v <= hi + 0.001, id)
            elseif VOLATILE[name] then
              assert.is_true(v == v and v >= 0, id)
            elseif b.type == "counter" then
              -- read after node_exporter's first scrape and before its second
              local eps = 1e-9 * math.abs(hi) + 1e-9
              assert.is_true(v >= math.min(lo, hi) - eps and v <= math.max(lo, hi) + eps,
                string.format("%s: %.17g not in [%.17g, %.17g]", id, v, lo, hi))
            else
              local min, max = math.min(lo, hi), math.max(lo, hi)
              local slack = name:match("_bytes$") and 64 * 2 ^ 20 or 64
              local tol = 0.25 * math.max(math.abs(min), math.abs(max)) + slack
              assert.is_true(v >= min - tol and v <= max + tol,
                string.format("%s: %.17g vs [%.17g, %.17g]", id, v, lo, hi))
            end
            checked = checked + 1
          end
        end
      end
      -- a collector may find nothing on this host (no power supply, no XFS mount...)
      if theirs > 0 then
        assert.is_true(checked > 0, "no series compared for " .. collector)
      end
    end)
  end
end)

describe("prometheus.exporter.unix defaults as Alloy's", function()
  it("leaves out node_cpu_guest_seconds_total unless cpu { guest = true } (Alloy's default is off)", function()
    local dir = proc.tmpdir()
    local function families(cpu)
      local pipeline = proc.write(dir .. "/guest.alloy", string.format(
        'prometheus.exporter.unix "h" {\n  set_collectors = ["cpu"]\n%s}\n', cpu))
      local h = proc.start_run(pipeline, { "--storage.path=" .. dir .. "/data" })
      local status, body = proc.http("GET", h.base .. "/api/v0/component/prometheus.exporter.unix.h/metrics")
      h.kill("TERM")
      assert.equals(0, h.wait(10))
      assert.equals(200, status)
      return body
    end
    local body = families("")
    assert.matches("node_cpu_seconds_total{", body, 1, true)
    assert.is_nil(body:find("node_cpu_guest_seconds_total", 1, true))
    body = families("  cpu {\n    guest = true\n  }\n")
    assert.matches("node_cpu_guest_seconds_total{", body, 1, true)
  end)
end)
