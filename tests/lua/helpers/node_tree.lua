--- A procfs/sysfs fixture tree for prometheus.exporter.unix's collectors of
--- hardware and services this machine may not have (hwmon, thermal zones, power
--- supplies, md arrays, NFS client and server, XFS, network interfaces, ARP) and
--- a textfile directory, written from text. Both moonwatch and node_exporter are
--- pointed at it (procfs_path/sysfs_path, --path.procfs/--path.sysfs).
local proc = require("helpers.proc")

local M = {}

local function mkdirs(path)
  os.execute("mkdir -p " .. proc.quote(path))
end

local function file(root, rel, content)
  local path = root .. "/" .. rel
  mkdirs(path:match("^(.*)/[^/]*$"))
  proc.write(path, content)
end

local function link(root, rel, target)
  local path = root .. "/" .. rel
  mkdirs(path:match("^(.*)/[^/]*$"))
  os.execute(string.format("ln -sfn %s %s", proc.quote(target), proc.quote(path)))
end

-- Files of a network interface under sys/devices/.../net/<name>.
local function iface(root, dir, attrs)
  for k, v in pairs(attrs) do
    file(root, dir .. "/" .. k, v)
  end
end

--- Writes the tree under root: root/proc, root/sys, root/textfile.
---@param root string
function M.build(root)
  -- network interfaces: symlinks into devices, as the kernel lays them out
  iface(root, "sys/devices/pci0000:00/0000:00:03.0/net/eth0", {
    addr_assign_type = "0\n", addr_len = "6\n", address = "52:54:00:12:34:56\n",
    broadcast = "ff:ff:ff:ff:ff:ff\n", carrier = "1\n", carrier_changes = "3\n",
    carrier_up_count = "2\n", carrier_down_count = "1\n", dev_id = "0x0\n", dormant = "0\n",
    duplex = "full\n", flags = "0x1003\n", ifalias = "uplink to core\n", ifindex = "2\n",
    iflink = "2\n", link_mode = "0\n", mtu = "1500\n", name_assign_type = "4\n",
    netdev_group = "0\n", operstate = "up\n", speed = "10000\n", tx_queue_len = "1000\n",
    type = "1\n", uevent = "INTERFACE=eth0\nIFINDEX=2\n", phys_port_name = "p0\n",
  })
  link(root, "sys/class/net/eth0", "../../devices/pci0000:00/0000:00:03.0/net/eth0")
  iface(root, "sys/devices/virtual/net/lo", {
    addr_assign_type = "0\n", address = "00:00:00:00:00:00\n", broadcast = "00:00:00:00:00:00\n",
    carrier = "1\n", carrier_changes = "0\n", flags = "0x9\n", ifalias = "\n", ifindex = "1\n",
    iflink = "1\n", mtu = "65536\n", operstate = "unknown\n", tx_queue_len = "1000\n", type = "772\n",
  })
  link(root, "sys/class/net/lo", "../../devices/virtual/net/lo")
  -- down, no carrier/speed/duplex files (the kernel answers EINVAL for them),
  -- a speed of -1, a value that is no number, octal and hex values
  iface(root, "sys/devices/virtual/net/veth1", {
    address = "aa:bb:cc:dd:ee:ff\n", broadcast = "ff:ff:ff:ff:ff:ff\n", flags = "0x1002\n",
    ifindex = "017\n", iflink = "0b11\n", mtu = "1_500\n", operstate = "down\n", speed = "-1\n",
    tx_queue_len = "lots\n", type = "1\n", dormant = "  1  \n",
  })
  link(root, "sys/class/net/veth1", "../../devices/virtual/net/veth1")
  iface(root, "sys/devices/virtual/net/ignored0", { operstate = "up\n", mtu = "9000\n" })
  link(root, "sys/class/net/ignored0", "../../devices/virtual/net/ignored0")
  file(root, "sys/class/net/bonding_masters", "bond0\n")

  -- hwmon: coretemp with its device, a Super I/O chip without one, a chip
  -- with neither device nor name, a name that cleans to nothing
  local core = "sys/devices/platform/coretemp.0"
  file(root, core .. "/hwmon/hwmon0/name", "coretemp\n")
  file(root, core .. "/hwmon/hwmon0/temp1_input", "45000\n")
  file(root, core .. "/hwmon/hwmon0/temp1_label", "Package id 0\n")
  file(root, core .. "/hwmon/hwmon0/temp1_crit", "100000\n")
  file(root, core .. "/hwmon/hwmon0/temp1_crit_alarm", "0\n")
  file(root, core .. "/hwmon/hwmon0/temp1_max", "80000\n")
  file(root, core .. "/hwmon/hwmon0/temp2_input", "43000\n")
  file(root, core .. "/hwmon/hwmon0/temp2_label", "Core \255 0\n")
  file(root, core .. "/hwmon/hwmon0/uevent", "\n")
  link(root, core .. "/hwmon/hwmon0/device", "../../../coretemp.0")
  file(root, core .. "/temp3_input", "41000\n") -- old drivers keep sensors in the device
  file(root, core .. "/modalias", "platform:coretemp\n")
  link(root, "sys/class/hwmon/hwmon0", "../../devices/platform/coretemp.0/hwmon/hwmon0")

  local sio = "sys/devices/platform/nct6775.656/hwmon/hwmon1"
  for k, v in pairs({
    name = "nct6779\n", in0_input = "1032\n", in0_min = "0\n", in0_max = "1744\n", in0_alarm = "0\n",
    in0_beep = "0\n", in1_input = "2040\n", in1_label = "AVSB\n", fan1_input = "1207\n", fan1_min = "0\n",
    fan1_target = "1200\n", fan1_pulses = "2\n", fan1_alarm = "0\n", pwm1 = "128\n", pwm1_enable = "5\n",
    pwm1_mode = "1\n", curr1_input = "2500\n", curr1_crit = "8000\n", power1_average = "12500000\n",
    power1_accuracy = "99000\n", power1_average_interval = "1000\n", power1_cap = "50000000\n",
    energy1_input = "123456789\n", humidity1_input = "45500\n", intrusion0_alarm = "1\n",
    intrusion0_beep = "0\n", beep_enable = "1\n", vrm = "12.5\n", update_interval = "2000\n",
    temp3_type = "4\n", temp3 = "38000\n", temp3_input = "37000\n", temp4_input = "bogus\n",
    temp5_offset = "-2000\n", cpu0_vid = "1100\n", ["temp01_input"] = "11000\n",
  }) do
    file(root, sio .. "/" .. k, v)
  end
  link(root, sio .. "/device", "..")
  link(root, "sys/class/hwmon/hwmon1", "../../devices/platform/nct6775.656/hwmon/hwmon1")
  file(root, "sys/devices/virtual/hwmon/hwmon2/temp1_input", "30000\n")
  link(root, "sys/class/hwmon/hwmon2", "../../devices/virtual/hwmon/hwmon2")
  file(root, "sys/devices/virtual/hwmon/hwmon3/name", "--\n")
  file(root, "sys/devices/virtual/hwmon/hwmon3/fan2_input", "900\n")
  file(root, "sys/devices/virtual/hwmon/hwmon3/fan2_max", "3000\n")
  link(root, "sys/class/hwmon/hwmon3", "../../devices/virtual/hwmon/hwmon3")
  file(root, "sys/class/hwmon/not_a_chip", "x\n")

  -- thermal zones and cooling devices
  for k, v in pairs({
    ["thermal_zone0/type"] = "x86_pkg_temp\n", ["thermal_zone0/policy"] = "step_wise\n",
    ["thermal_zone0/temp"] = "52000\n", ["thermal_zone0/mode"] = "enabled\n",
    ["thermal_zone1/type"] = "acpitz\n", ["thermal_zone1/policy"] = "step_wise\n",
    ["thermal_zone1/temp"] = "-1500\n", ["thermal_zone1/passive"] = "0\n",
    ["thermal_zone10/type"] = "iwlwifi_1\n", ["thermal_zone10/policy"] = "user_space\n",
    ["thermal_zone10/temp"] = "39000\n",
    ["cooling_device0/type"] = "Processor\n", ["cooling_device0/max_state"] = "3\n",
    ["cooling_device0/cur_state"] = "0\n",
    ["cooling_device1/type"] = "intel_powerclamp\n", ["cooling_device1/max_state"] = "50\n",
    ["cooling_device1/cur_state"] = "-1\n",
  }) do
    file(root, "sys/devices/virtual/thermal/" .. k, v)
  end
  for _, d in ipairs({ "thermal_zone0", "thermal_zone1", "thermal_zone10", "cooling_device0", "cooling_device1" }) do
    link(root, "sys/class/thermal/" .. d, "../../devices/virtual/thermal/" .. d)
  end

  -- power supplies: mains, a battery with most attributes
  local ac = "sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0003:00/power_supply/AC"
  file(root, ac .. "/type", "Mains\n")
  file(root, ac .. "/online", "1\n")
  file(root, ac .. "/uevent", "POWER_SUPPLY_NAME=AC\nPOWER_SUPPLY_ONLINE=1\n")
  link(root, "sys/class/power_supply/AC", "../../devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0003:00/power_supply/AC")
  local bat = "sys/devices/LNXSYSTM:00/LNXSYBUS:00/PNP0C0A:00/power_supply/BAT0"
  for k, v in pairs({
    type = "Battery\n", status = "Discharging\n", present = "1\n", technology = "Li-ion\n",
    cycle_count = "42\n", voltage_min_design = "11400000\n", voltage_now = "12156000\n",
    power_now = "9870000\n", energy_full_design = "57000000\n", energy_full = "51230000\n",
    energy_now = "41500000\n", capacity = "81\n", capacity_level = "Normal\n", model_name = "5B10W13975\n",
    manufacturer = "SMP\n", serial_number = "  \n", temp = "298\n", time_to_empty_now = "15120\n",
    charge_control_limit = "0x10\n", current_avg = "-1000\n", alarm = "0\n",
  }) do
    file(root, bat .. "/" .. k, v)
  end
  link(root, "sys/class/power_supply/BAT0", "../../devices/LNXSYSTM:00/LNXSYBUS:00/PNP0C0A:00/power_supply/BAT0")
  file(root, "sys/devices/virtual/power_supply/ups0/type", "UPS\n")
  file(root, "sys/devices/virtual/power_supply/ups0/capacity", "100\n")
  link(root, "sys/class/power_supply/ups0", "../../devices/virtual/power_supply/ups0")

  -- XFS: two filesystems, the global stats file (not per device)
  local xfs = table.concat({
    "extent_alloc 92447 97589 92448 93751",
    "abt 0 0 0 0",
    "blk_map 1767055 188820 184891 92447 92448 2140766 0",
    "bmbt 0 0 0 0",
    "dir 185039 92447 92444 136422",
    "trans 706 944304 0",
    "ig 185045 58807 0 126238 0 33637 22",
    "log 2883 113448 9 17360 739",
    "push_ail 945014 0 134260 15483 0 3940 464 159985 0 40",
    "xstrat 92447 0",
    "rw 107739 94045",
    "attr 4 0 0 0",
    "icluster 8677 7849 135802",
    "vnodes 92601 0 0 0 92444 92444 92444 0",
    "buf 2666287 7122 2659202 3599 2 7085 0 10297 7085",
    "abtb2 184 1062 1024 1063 1 0 0 0 0 0 0 0 0 0 0",
    "abtc2 345 2416 2266 2418 1 0 0 0 0 0 0 0 0 0 0",
    "bmbt2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
    "ibt2 343004 3090 2830 27 0 0 0 0 0 0 0 0 0 0 0",
    "fibt2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
    "rmapbt 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
    "refcntbt 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
    "qm 0 0 0 0 0 0 0 0 0",
    "xpc 399724544 92823103 86219234",
    "defer_relog 0",
    "debug 0",
    "",
  }, "\n")
  file(root, "sys/fs/xfs/vdb/stats/stats", xfs)
  file(root, "sys/fs/xfs/vdc/stats/stats", (xfs:gsub("rw 107739 94045", "rw 1 2")))
  file(root, "sys/fs/xfs/stats/stats", xfs)

  -- procfs
  file(root, "proc/net/arp", table.concat({
    "IP address       HW type     Flags       HW address            Mask     Device",
    "192.168.1.1      0x1         0x2         52:54:00:00:00:01     *        eth0",
    "192.168.1.7      0x1         0x2         52:54:00:00:00:07     *        eth0",
    "192.168.1.9      0x1         0x0         00:00:00:00:00:00     *        eth0",
    "10.0.0.2         0x1         0x2         52:54:00:00:00:02     *        veth1",
    "",
  }, "\n"))
  file(root, "proc/mdstat", table.concat({
    "Personalities : [linear] [raid0] [raid1] [raid6] [raid5] [raid4]",
    "md3 : active raid6 sda1[8] sdh1[7] sdg1[6] sdf1[5] sde1[11] sdd1[3] sdc1[10] sdb1[9] sdd1[10](S)",
    "      5853468288 blocks super 1.2 level 6, 64k chunk, algorithm 2 [8/8] [UUUUUUUU]",
    "",
    "md127 : active raid1 sdi2[0] sdj2[1]",
    "      312319552 blocks [2/2] [UU]",
    "",
    "md4 : inactive raid1 sda3[0](F) sdb3[1](S)",
    "      4883648 blocks [2/2] [UU]",
    "",
    "md6 : active raid1 sdb2[2](F) sdc[1](S) sda2[0]",
    "      195310144 blocks [2/1] [U_]",
    "      [=>...................]  recovery =  8.5% (16775552/195310144) finish=17.0min speed=259783K/sec",
    "",
    "md8 : active raid1 sdb1[1] sda1[0]",
    "      195310144 blocks [2/2] [UU]",
    "      [=>...................]  resync =  8.5% (16775552/195310144) finish=17.0min speed=259783K/sec",
    "",
    "md201 : active raid1 sda3[0] sdb3[1]",
    "      1993728 blocks super 1.2 [2/2] [UU]",
    "      [=>...................]  check =  5.7% (114176/1993728) finish=0.2min speed=114176K/sec",
    "",
    "md7 : active raid6 sdb1[0] sde1[3] sdd1[2] sdc1[1](F)",
    "      7813735424 blocks super 1.2 level 6, 512k chunk, algorithm 2 [4/3] [U_UU]",
    "      bitmap: 0/30 pages [0KB], 65536KB chunk",
    "",
    "md9 : active raid1 sdc2[2] sdd2[3] sdb2[1] sda2[0] sde[4](F) sdg[6](S)",
    "      523968 blocks super 1.2 [4/4] [UUUU]",
    "      resync=DELAYED",
    "",
    "md10 : active raid0 sda1[0] sdb1[1]",
    "       314159265 blocks 64k chunks",
    "",
    "md11 : active (auto-read-only) raid1 sdb2[0] sdc2[1] sdc3[2](F) hda[4](S)",
    "      4190208 blocks super 1.2 [2/2] [UU]",
    "      resync=PENDING",
    "",
    "md120 : active linear sda1[1] sdb1[0]",
    "        2095104 blocks super 1.2 0k rounding",
    "",
    "unused devices: <none>",
    "",
  }, "\n"))
  file(root, "proc/net/rpc/nfs", table.concat({
    "net 18628 0 18628 6",
    "rpc 4329785 0 4338291",
    "proc2 18 2 69 0 0 4410 0 0 0 0 0 0 0 0 0 0 0 99 2",
    "proc3 22 1 4084749 29200 94754 32580 186 47747 7981 8639 0 6356 0 6962 0 7958 0 0 241 4 4 2 39",
    "proc4 48 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 "
      .. "32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48",
    "",
  }, "\n"))
  file(root, "proc/net/rpc/nfsd", table.concat({
    "rc 0 6 18622",
    "fh 0 0 0 0 0",
    "io 157286400 72",
    "th 8 0 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000",
    "ra 32 0 0 0 0 0 0 0 0 0 0 11",
    "net 18628 0 18628 6",
    "rpc 18628 1 2 3 4",
    "proc2 18 2 69 0 0 4410 0 0 0 0 0 0 0 0 0 0 0 99 2",
    "proc3 22 2 112 0 2719 111 0 0 0 0 0 0 0 0 0 0 0 27 216 0 2 1 0",
    "proc4 2 2 10853",
    "proc4ops 72 0 0 0 1098 2 0 0 0 0 8179 5896 0 0 0 0 5900 0 0 2 0 2 0 9609 0 2 150 1272 0 0 0 1236 "
      .. "0 0 0 0 3 3 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
    "",
  }, "\n"))

  -- textfile directory: plain families, one shared by two files without HELP,
  -- a summary and a histogram, and files node_exporter refuses
  file(root, "textfile/apt.prom", table.concat({
    "# HELP apt_upgrades_pending Apt package pending updates by origin.",
    "# TYPE apt_upgrades_pending gauge",
    'apt_upgrades_pending{origin="Debian:bookworm/stable",arch="amd64"} 3',
    'apt_upgrades_pending{origin="Debian-Security:bookworm/stable",arch="amd64"} 1',
    "# TYPE node_reboot_required gauge",
    "node_reboot_required 0",
    "backup_last_success_timestamp_seconds 1.7e9",
    'shared_metric{file="apt"} 1',
    "",
  }, "\n"))
  file(root, "textfile/latency.prom", table.concat({
    "# HELP job_duration_seconds How long the job took.",
    "# TYPE job_duration_seconds summary",
    'job_duration_seconds{job="backup",quantile="0.5"} 12.5',
    'job_duration_seconds{job="backup",quantile="0.99"} 40',
    'job_duration_seconds_sum{job="backup"} 1234.5',
    'job_duration_seconds_count{job="backup"} 100',
    "# TYPE request_size_bytes histogram",
    'request_size_bytes_bucket{le="100"} 5',
    'request_size_bytes_bucket{le="1000"} 17',
    'request_size_bytes_bucket{le="+Inf"} 20',
    "request_size_bytes_sum 8100",
    "request_size_bytes_count 20",
    "# TYPE jobs_run_total counter",
    'jobs_run_total{job="backup",status="ok"} 41',
    'jobs_run_total{job="backup"} 2',
    'shared_metric{file="latency"} 2',
    "",
  }, "\n"))
  file(root, "textfile/stamped.prom", "stamped_metric 1 1700000000000\n")
  file(root, "textfile/broken.prom", "this is { not a metric\n")
  file(root, "textfile/notes.txt", "not a .prom file\n")
end

return M
