--- prometheus.exporter.unix: host metrics, node_exporter's Linux collectors in C.
-- Metric names, labels, HELP and TYPE are node_exporter 1.5.0's, so the
-- node-exporter mixin's dashboards and alerts work unchanged. The collectors
-- are plain C readers (runtime/node*.c) run on the event loop when the target
-- is scraped; filesystem statfs calls run in worker threads with a timeout.
-- The exported target is on the in-memory address (job="integrations/unix"),
-- also served at /api/v0/component/<id>/metrics.
--
-- Collectors: arp conntrack cpu cpufreq diskstats entropy filefd filesystem
-- hwmon loadavg mdadm meminfo netclass netdev netstat nfs nfsd os
-- powersupplyclass pressure schedstat selinux sockstat softnet stat textfile
-- thermal_zone time timex udp_queues uname vmstat xfs, with Alloy's blocks of
-- options for them (arp, cpu, disk, filesystem, hwmon, netclass, netdev,
-- netstat, powersupply, textfile, vmstat). node_exporter's other default
-- collectors (bcache, bonding, btrfs, dmi, edac, fibrechannel, infiniband,
-- ipvs, nvme, rapl, tapestats, zfs) have no moonwatch counterpart: the default
-- set leaves them out and names them once at start (info) when no collector
-- list is given; named in set_collectors or enable_collectors they are
-- skipped with a warning. include_exporter_metrics
-- is refused (not supported yet: node_exporter's are Go runtime and promhttp
-- metrics; moonwatch's own are prometheus.exporter.self's).
local inmemory = require("moonwatch.inmemory")
local node = require("moonwatch.native.node")

local Instance = {}
Instance.__index = Instance

-- node_exporter 1.5.0's default-enabled Linux collectors (Alloy's default set).
local NODE_EXPORTER_DEFAULTS = {
  "arp", "bcache", "bonding", "btrfs", "conntrack", "cpu", "cpufreq", "diskstats", "dmi", "edac",
  "entropy", "fibrechannel", "filefd", "filesystem", "hwmon", "infiniband", "ipvs", "loadavg",
  "mdadm", "meminfo", "netclass", "netdev", "netstat", "nfs", "nfsd", "nvme", "os",
  "powersupplyclass", "pressure", "rapl", "schedstat", "selinux", "sockstat", "softnet", "stat",
  "tapestats", "textfile", "thermal_zone", "time", "timex", "udp_queues", "uname", "vmstat", "xfs",
  "zfs",
}

local default = node.default

local IMPLEMENTED = {}
for _, name in ipairs(node.collectors()) do
  IMPLEMENTED[name] = true
end

local function unsupported(why)
  return function(v)
    if v then
      return nil, "not supported yet" .. (why and (": " .. why) or "")
    end
  end
end

local M = {
  name = "prometheus.exporter.unix",
  doc = "Exposes host metrics (node_exporter's Linux collectors, natively in C) as a target.",
  args = {
    set_collectors = { type = "list", of = { type = "string" }, optional = true,
      doc = "Overrides the default set of enabled collectors with the collectors listed." },
    enable_collectors = { type = "list", of = { type = "string" }, default = {},
      doc = "Collectors to mark as enabled." },
    disable_collectors = { type = "list", of = { type = "string" }, default = {},
      doc = "Collectors to mark as disabled." },
    include_exporter_metrics = { type = "bool", default = false,
      check = unsupported("node_exporter's own metrics are Go runtime and promhttp metrics; moonwatch's own "
        .. "are prometheus.exporter.self's"),
      doc = "Whether metrics about the exporter itself should be reported. Not supported yet: must be false "
        .. "(moonwatch's own metrics are prometheus.exporter.self's)." },
    procfs_path = { type = "string", default = "/proc", doc = "The procfs mount point." },
    sysfs_path = { type = "string", default = "/sys", doc = "The sysfs mount point." },
    rootfs_path = { type = "string", default = "/", doc = "Specify a prefix for accessing the host filesystem." },
    udev_data_path = { type = "string", default = "/run/udev/data", doc = "The udev data path." },
    arp = { type = "block", doc = "arp collector.", schema = {
      args = {
        device_exclude = { type = "regex", optional = true, doc = "Regexp of ARP devices to exclude." },
        device_include = { type = "regex", optional = true, doc = "Regexp of ARP devices to include." },
        netlink = { type = "bool", default = false,
          doc = "Count the IPv4 neighbours of an rtnetlink dump instead of reading /proc/net/arp." },
      },
      exclusive = { { "device_include", "device_exclude" } },
    } },
    cpu = { type = "block", doc = "cpu collector.", schema = { args = {
      guest = { type = "bool", default = false,
        doc = "Enable the node_cpu_guest_seconds_total metric (off by default, as Alloy's; node_exporter's is on)." },
      info = { type = "bool", default = false, doc = "Enable the node_cpu_info metric." },
      flags_include = { type = "regex", optional = true,
        doc = "Regexp of flags to include (node_cpu_flag_info); turns info on." },
      bugs_include = { type = "regex", optional = true,
        doc = "Regexp of bugs to include (node_cpu_bug_info); turns info on." },
    } } },
    disk = { type = "block", doc = "diskstats collector.", schema = {
      args = {
        device_exclude = { type = "regex", default = default("disk_device_exclude"),
          doc = "Regexp of devices to exclude." },
        device_include = { type = "regex", optional = true,
          doc = "Regexp of devices to include (replaces device_exclude)." },
      },
      exclusive = { { "device_include", "device_exclude" } },
    } },
    filesystem = { type = "block", doc = "filesystem collector.", schema = { args = {
      fs_types_exclude = { type = "regex", default = default("fs_types_exclude"),
        doc = "Regexp of filesystem types to ignore." },
      mount_points_exclude = { type = "regex", default = default("fs_mount_points_exclude"),
        doc = "Regexp of mount points to ignore." },
      mount_timeout = { type = "duration", default = "5s", positive = true,
        doc = "How long a statfs may take before the mount is reported stuck (device_error 1)." },
    } } },
    hwmon = { type = "block", doc = "hwmon collector.", schema = {
      args = {
        chip_exclude = { type = "regex", optional = true, doc = "Regexp of hwmon chips to exclude." },
        chip_include = { type = "regex", optional = true, doc = "Regexp of hwmon chips to include." },
      },
      exclusive = { { "chip_include", "chip_exclude" } },
    } },
    netclass = { type = "block", doc = "netclass collector.", schema = { args = {
      ignore_invalid_speed_device = { type = "bool", default = false,
        doc = "Ignore net devices with invalid speed values (no node_network_speed_bytes for them)." },
      ignored_devices = { type = "regex", default = "^$", doc = "Regexp of net devices to ignore." },
    } } },
    netdev = { type = "block", doc = "netdev collector.", schema = {
      args = {
        address_info = { type = "bool", default = false, check = unsupported(),
          doc = "Not supported." },
        device_exclude = { type = "regex", optional = true, doc = "Regexp of net devices to exclude." },
        device_include = { type = "regex", optional = true, doc = "Regexp of net devices to include." },
      },
      exclusive = { { "device_include", "device_exclude" } },
    } },
    netstat = { type = "block", doc = "netstat collector.", schema = { args = {
      fields = { type = "regex", default = default("netstat_fields"), doc = "Regexp of fields to return." },
    } } },
    powersupply = { type = "block", doc = "powersupplyclass collector.", schema = { args = {
      ignored_supplies = { type = "regex", default = "^$", doc = "Regexp of power supplies to ignore." },
    } } },
    textfile = { type = "block", doc = "textfile collector.", schema = { args = {
      directory = { type = "string", default = "",
        doc = "Directory (or glob of directories) to read *.prom files from; \"\" reads none." },
    } } },
    vmstat = { type = "block", doc = "vmstat collector.", schema = { args = {
      fields = { type = "regex", default = default("vmstat_fields"), doc = "Regexp of fields to return." },
    } } },
  },
  exports = {
    targets = { type = "targets", doc = "One target on the in-memory address, job=\"integrations/unix\"." },
  },
}

--- The enabled collectors as Alloy computes them, split into implemented and skipped.
---@return string[] enabled, string[] skipped (requested but not available in moonwatch),
---  string[] left_out (of node_exporter's default set, not available in moonwatch, not disabled)
function M.collectors(args)
  local set, requested = {}, {}
  if args.set_collectors and #args.set_collectors > 0 then
    for _, c in ipairs(args.set_collectors) do
      set[c], requested[c] = true, true
    end
  else
    for _, c in ipairs(NODE_EXPORTER_DEFAULTS) do
      set[c] = true
    end
  end
  for _, c in ipairs(args.disable_collectors or {}) do
    set[c] = nil
  end
  for _, c in ipairs(args.enable_collectors or {}) do
    set[c], requested[c] = true, true
  end
  local enabled, skipped, left_out = {}, {}, {}
  for c in pairs(set) do
    if IMPLEMENTED[c] then
      enabled[#enabled + 1] = c
    elseif requested[c] then
      skipped[#skipped + 1] = c
    else
      left_out[#left_out + 1] = c
    end
  end
  table.sort(enabled)
  table.sort(skipped)
  table.sort(left_out)
  return enabled, skipped, left_out
end

-- Builds the C collector set for args; returns it (GC-owned) and the skipped collectors.
local function build(args)
  local enabled, skipped = M.collectors(args)
  local o = { collectors = table.concat(enabled, ",") } -- a field left nil keeps its default
  local function set(field, v)
    o[field] = v
  end
  set("procfs_path", args.procfs_path)
  set("sysfs_path", args.sysfs_path)
  set("rootfs_path", args.rootfs_path)
  set("udev_data_path", args.udev_data_path)
  local fs, disk, netdev, cpu = args.filesystem or {}, args.disk or {}, args.netdev or {}, args.cpu or {}
  set("fs_mount_points_exclude", fs.mount_points_exclude)
  set("fs_types_exclude", fs.fs_types_exclude)
  o.fs_mount_timeout = fs.mount_timeout or 5
  set("netdev_device_include", netdev.device_include)
  set("netdev_device_exclude", netdev.device_exclude)
  set("disk_device_include", disk.device_include)
  set("disk_device_exclude", disk.device_exclude)
  set("netstat_fields", (args.netstat or {}).fields)
  set("vmstat_fields", (args.vmstat or {}).fields)
  o.cpu_guest = cpu.guest and true or false
  o.cpu_info = cpu.info and true or false
  set("cpu_flags_include", cpu.flags_include)
  set("cpu_bugs_include", cpu.bugs_include)
  local arp, hwmon, netclass = args.arp or {}, args.hwmon or {}, args.netclass or {}
  set("arp_device_include", arp.device_include)
  set("arp_device_exclude", arp.device_exclude)
  o.arp_netlink = arp.netlink and true or false
  set("hwmon_chip_include", hwmon.chip_include)
  set("hwmon_chip_exclude", hwmon.chip_exclude)
  set("netclass_ignored_devices", netclass.ignored_devices)
  o.netclass_ignore_invalid_speed = netclass.ignore_invalid_speed_device and true or false
  set("powersupply_ignored", (args.powersupply or {}).ignored_supplies)
  set("textfile_directory", (args.textfile or {}).directory)
  local set_, err = node.new(o)
  if not set_ then
    return nil, err
  end
  return set_, enabled, skipped
end

--- Collects every enabled collector: body, content type, gzipped (or nil, err).
function Instance:collect(accept, accept_encoding)
  local body, content_type, gzipped, errors = self.set:collect(accept, accept_encoding)
  if not body then
    return nil, content_type
  end
  self.last_errors = errors
  if errors ~= "" then
    self.ctx.log:debug("collectors failed", { errors = errors })
  end
  return body, content_type, gzipped
end

function Instance:configure(args)
  local set, enabled, skipped = build(args)
  if not set then
    error(enabled, 0)
  end
  if #skipped > 0 then
    self.ctx.log:warn("collectors moonwatch does not have are skipped", { collectors = table.concat(skipped, ",") })
  end
  self.set, self.enabled, self.skipped = set, enabled, skipped
end

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, last_errors = "" }, Instance)
  self:configure(args)
  local _, _, left_out = M.collectors(args)
  if #left_out > 0 then
    ctx.log:info("node_exporter default collectors that moonwatch does not have are left out",
      { collectors = table.concat(left_out, ",") })
  end
  inmemory.register(ctx.id, function(accept, accept_encoding)
    return self:collect(accept, accept_encoding)
  end)
  ctx:export({ targets = { inmemory.target(ctx, "integrations/unix") } })
  return self
end

function Instance:update(args)
  self:configure(args)
end

function Instance:stop()
  inmemory.unregister(self.ctx.id)
end

function Instance:debug_info()
  return {
    metrics_path = inmemory.path(self.ctx.id),
    collectors = self.enabled,
    skipped_collectors = self.skipped,
    last_errors = self.last_errors,
  }
end

return M
