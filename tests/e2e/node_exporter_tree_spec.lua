-- End-to-end: the collectors of hardware and services a test machine may not have (arp, hwmon,
-- mdadm, netclass, nfs, nfsd, powersupplyclass, selinux, textfile, thermal_zone, xfs) against
-- the real node_exporter (Debian's prometheus-node-exporter 1.5.x), both pointed at the same
-- fixture tree (helpers.node_tree: --path.procfs/--path.sysfs/--collector.textfile.directory as
-- procfs_path/sysfs_path/textfile.directory). The tree does not change, so every family must
-- come out byte for byte as node_exporter writes it: HELP, TYPE, series lines (names, label
-- sets, values) and their order. Also each block's options against node_exporter's flags, and
-- textfile directories of edge cases and of generated files (what node_exporter refuses must be
-- refused, what it accepts written the same).
local proc = require("helpers.proc")
local node_tree = require("helpers.node_tree")

local NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
local tmp = proc.tmpdir()

local COLLECTORS = { "arp", "hwmon", "mdadm", "netclass", "nfs", "nfsd", "powersupplyclass", "selinux", "textfile",
  "thermal_zone", "xfs" }
-- Collector -> Lua patterns of the families it owns (textfile: every other family).
local OWNS = {
  arp = { "^node_arp_" }, hwmon = { "^node_hwmon_" }, mdadm = { "^node_md_" }, netclass = { "^node_network_" },
  nfs = { "^node_nfs_" }, nfsd = { "^node_nfsd_" }, powersupplyclass = { "^node_power_supply_" },
  selinux = { "^node_selinux_" }, thermal_zone = { "^node_thermal_zone_", "^node_cooling_device_" },
  xfs = { "^node_xfs_" },
}

local function owner(name)
  for c, pats in pairs(OWNS) do
    for _, p in ipairs(pats) do
      if name:match(p) then
        return c
      end
    end
  end
  return "textfile"
end

-- Lines that differ by nature: the collectors' durations, node_exporter's own families.
local function ignored(name)
  return name == "node_scrape_collector_duration_seconds" or name == "node_exporter_build_info"
    or name:match("^promhttp_") ~= nil
end

--- An exposition cut into families: name -> the text of its HELP, TYPE and series lines.
local function blocks(body)
  local out, order, cur = {}, {}, nil
  for line in body:gmatch("[^\n]*\n") do
    local name = line:match("^# HELP (%S+)")
    if name then
      cur = name
      order[#order + 1] = name
      out[cur] = ""
    end
    assert(cur, "a line before any HELP: " .. line)
    out[cur] = out[cur] .. line
  end
  for name in pairs(out) do
    if ignored(name) then
      out[name] = nil
    end
  end
  return out, order
end

-- node_exporter's flags for the tree under root, the collectors and more flags.
local function ne_flags(root, collectors, extra)
  local args = { "--collector.disable-defaults", "--web.disable-exporter-metrics", "--path.procfs=" .. root .. "/proc",
    "--path.sysfs=" .. root .. "/sys" }
  for _, c in ipairs(collectors) do
    args[#args + 1] = "--collector." .. c
  end
  for _, a in ipairs(extra or {}) do
    args[#args + 1] = a
  end
  for i, a in ipairs(args) do
    args[i] = proc.quote(a)
  end
  return table.concat(args, " ")
end

local ne_pids = {}
--- Starts node_exporter with flags; returns its /metrics URL.
local function start_ne(flags)
  local port, pid = proc.start_server(NODE_EXPORTER .. " --web.listen-address=127.0.0.1:%d " .. flags:gsub("%%", "%%%%"),
    "curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/metrics | grep -q 200 && echo ok")
  ne_pids[#ne_pids + 1] = pid
  return "http://127.0.0.1:" .. port .. "/metrics"
end

local function get(url)
  local status, body = proc.http("GET", url)
  assert.equals(200, status, url)
  return body
end

--- Asserts that ours has exactly node_exporter's families, each block identical.
local function same_output(ne_body, our_body, what)
  local want, order = blocks(ne_body)
  local got = blocks(our_body)
  for _, name in ipairs(order) do
    if want[name] then
      assert.equals(want[name], got[name], what .. ": family " .. name)
    end
  end
  for name in pairs(got) do
    assert.is_truthy(want[name], what .. ": family node_exporter does not have: " .. name)
  end
end

local function lua_list(t)
  local out = {}
  for _, c in ipairs(t) do
    out[#out + 1] = string.format("%q", c)
  end
  return "{ " .. table.concat(out, ", ") .. " }"
end

--- A textfile directory: name -> content.
local function write_dir(dir, files)
  os.execute("mkdir -p " .. proc.quote(dir))
  for name, content in pairs(files) do
    proc.write(dir .. "/" .. name, content)
  end
  return dir
end

-- Files node_exporter refuses (each alone in its file, so the others still count).
local REFUSED = {
  ["r_noeol.prom"] = "noeol 1",
  ["r_crlf.prom"] = "crlf 1\r\n",
  ["r_trailing_blank.prom"] = "trail 1 \n",
  ["r_trailing_tab.prom"] = "ttab 1\t\n",
  ["r_help_quote.prom"] = '# HELP helpq a \\"q\\" b\nhelpq 1\n',
  ["r_help_escape.prom"] = "# HELP helpbad a \\t b\nhelpbad 1\n",
  ["r_label_escape.prom"] = 'esc{a="x\\qy"} 1\n',
  ["r_name_label.prom"] = 'resv{__name__="x"} 1\n',
  ["r_repeated_label.prom"] = 'rep{a="1",a="2"} 1\n',
  ["r_unknown_type.prom"] = "# TYPE unk info\nunk 1\n",
  ["r_type_blank.prom"] = "# TYPE tsp gauge \ntsp 1\n",
  ["r_late_type.prom"] = "late 1\n# TYPE late gauge\n",
  ["r_second_help.prom"] = "# HELP hh first\nhh 1\n# HELP hh second\n",
  ["r_hex.prom"] = "vhex 0x10\n",
  ["r_hexp.prom"] = "hexp 0x1p4\n",
  ["r_underscore.prom"] = "vunder 1_000\n",
  ["r_overflow.prom"] = "big 1e400\n",
  ["r_plus_nan.prom"] = "pnan +nan\n",
  ["r_no_value.prom"] = "novalue\n",
  ["r_quoted_name.prom"] = '{quoted="1"} 1\n',
  ["r_bad_utf8.prom"] = 'utf{a="\255x"} 1\n',
  ["r_timestamp.prom"] = "stamped 1 1700000000000\n",
  ["r_spurious.prom"] = 'x{a="1"} 1 123 456\n',
  ["r_comment_value.prom"] = 'cmt{a="1"} 1 # comment\n',
  ["r_bad_quantile.prom"] = '# TYPE sq summary\nsq{quantile="1e400"} 2\n',
  ["r_nul_value.prom"] = "nul 1\0\n",
  ["r_comment_eof.prom"] = "ok_eof 1\n# no newline",
}

-- Files node_exporter accepts, each with its quirk.
local ACCEPTED = {
  ["a_type_case.prom"] = "# TYPE upper GAUGE\nupper 1\n",
  ["a_help_nospace.prom"] = "#HELP nospace text\nnospace 1\n",
  ["a_help_empty.prom"] = "# HELP emptyhelp\nemptyhelp 1\n",
  ["a_help_bad_utf8.prom"] = "# HELP helputf bad \255 byte\nhelputf 1\n",
  ["a_help_escapes.prom"] = "# HELP bs a\\\\b\\nc\nbs 1\n",
  ["a_blanks.prom"] = 'tabs\t{a="1"}\t2\nspaces { a = "1" , } 3\n  lead 1\nnolab{} 1\n\n\n   \n',
  ["a_values.prom"] = "vinf Infinity\nvinf2 inf\nvnan nan\nminf -inf\nvdot .5\nvexp 1e3\nvplus +5\nonedot 1.\n"
    .. "zero1 01\nnegz -0\nsmall 1e-400\n",
  ["a_label_newline.prom"] = 'lv{a="new\\nline",b="q\\"uote",c="back\\\\slash"} 1\n',
  ["a_empty_labels.prom"] = 'empty_lab{a=""} 1\nempty_lab2{a="",b="x"} 1\nempty_lab2{b="y"} 2\n',
  ["a_union.prom"] = 'mixed{b="2",a="1"} 1\nmixed{c="3"} 2\nmixed 3\n',
  ["a_duplicates.prom"] = 'dupl{a="1"} 1\ndupl{a="1"} 2\ndupl{a="1",b=""} 3\n',
  ["a_count_before_type.prom"] = "x_count 1\n# TYPE x summary\n",
  ["a_help_of_count.prom"] = '# TYPE hs histogram\n# HELP hs_count other\nhs_count 1\n',
  ["a_summary.prom"] = '# TYPE s2 summary\ns2{quantile="NaN"} 1\ns2{quantile="0.5",x="1"} 2\ns2_count{x="1"} 5\n'
    .. 's2{quantile="0.9",x="1"} 3\ns2{quantile="0.5",x="1"} 4\n',
  ["a_summary_bare.prom"] = "# TYPE s1 summary\ns1_sum 3\ns1_count 2\n",
  ["a_histogram.prom"] = '# TYPE h1 histogram\nh1_bucket{le="1"} 1\nh1_sum 3\nh1_count 2\n'
    .. '# TYPE h2 histogram\nh2_bucket{le="1"} 1\nh2_bucket{le="1.0"} 2\nh2_bucket{le="+Inf"} 3\nh2_count 3\n'
    .. '# TYPE hq histogram\nhq{le="NaN"} 3\nhq_bucket{le="NaN"} 4\nhq_bucket{le="-Inf"} 1\nhq_count 5\n',
  ["a_counts.prom"] = "# TYPE sc summary\nsc_count -1\nsc_sum 1\n# TYPE sd summary\nsd_count NaN\n"
    .. "# TYPE se summary\nse_count 1e30\n# TYPE hb histogram\nhb_bucket{le=\"1\"} -1\nhb_bucket{le=\"2\"} 1e19\n"
    .. "hb_count 9.3e18\n",
  ["a_suffixes.prom"] = "foo_sum 1\nfoo_count 2\nfoo_bucket{le=\"1\"} 3\n# TYPE g1 gauge\ng1_bucket 1\ng1 2\n",
  ["a_specials.prom"] = "special_nan NaN\nspecial_inf +Inf\nspecial_ninf -Inf\n# TYPE cc counter\ncc -5\n",
  ["a_empty.prom"] = "",
  ["a_comments.prom"] = "# just a comment\n#\n# \n# HELP  \n# TYPE\n# TYPE x_only\n",
  ["a_gauge_histogram_unused.prom"] = "# TYPE gh gauge_histogram\n",
  -- families of several files: the first file's type and HELP win; suffix collisions
  ["b1.prom"] = '# HELP conflict_type A.\n# TYPE conflict_type gauge\nconflict_type{f="a"} 1\n'
    .. '# HELP conflict_help First.\nconflict_help{f="a"} 1\nmixed_labels{a="1"} 1\nsame_series 5\n'
    .. '# TYPE coll summary\ncoll{quantile="0.5"} 1\ncoll_sum 2\ncoll_count 3\nhcol_bucket 1\n',
  ["b2.prom"] = '# HELP conflict_type A.\n# TYPE conflict_type counter\nconflict_type{f="b"} 2\n'
    .. '# HELP conflict_help Second.\nconflict_help{f="b"} 2\nmixed_labels{b="2"} 2\nsame_series 6\n'
    .. 'coll_count 5\ncoll_sum 6\ncoll_bucket 7\n# TYPE hcol histogram\nhcol_bucket{le="1"} 1\n',
  ["b3.prom"] = "# HELP helped Has help.\nhelped 1\n",
  ["b4.prom"] = 'helped{f="4"} 2\n',
  ["not_prom.txt"] = "ignored 1\n",
}

-- Enough files that the collector's arrays grow (a crash once), one family over all of them.
for i = 1, 40 do
  ACCEPTED[string.format("m%02d.prom", i)] = string.format('# HELP many_%02d h%d\nmany_%02d{i="%d"} %d\nshared{f="%d"} %d\n',
    i, i, i, i, i, i, i)
end

-- Generated files: lines of names, labels and values, mostly valid, some not, from a fixed
-- seed (the same files every run).
local function generator(seed)
  local state = seed
  local function rnd(n) -- 0 .. n-1
    state = (state * 1103515245 + 12345) % 2147483648
    return math.floor(state / 65536) % n
  end
  local function pick(t)
    return t[rnd(#t) + 1]
  end
  local names = { "a", "b", "x", "x_count", "x_sum", "x_bucket", "h", "h_bucket", "h_count", "h_sum", "s", "s_count",
    "s_sum", "c_total", ":m", "m:n" }
  local lnames = { "a", "b", "le", "quantile", "job", "_x" }
  local vals = { "1", "0", "-1", "1.5", "1e3", "NaN", "+Inf", "-Inf", "2", "3", "7.25", "-0", "9.3e18",
    "18446744073709551616", "inf", "nan", "1", "2", "1e400", "0x1", "abc", "", ".5", "5.", "Infinity", "+5" }
  local lvals = { "", "1", "0.5", "+Inf", "NaN", "x", "y", "2", "0.9", "-Inf", "", "1", "0.5", "x", 'a\\"b', "a\\\\b",
    "a\\nb", "é", "1e400", "\\t", "\255" }
  local types = { "counter", "gauge", "summary", "histogram", "untyped", "GAUGE", "Counter", "info", "" }
  local ws = { " ", "  ", "\t", " \t", "" }
  local function line()
    local r = rnd(100)
    if r < 15 then
      return string.format("# TYPE %s%s%s", pick(names), pick(ws) == "" and " " or pick(ws), pick(types))
    elseif r < 25 then
      return string.format("# HELP %s %s", pick(names), pick({ "help text", "a\\\\b", "a\\nb", 'a\\"b', "", "x\\q" }))
    elseif r < 28 then
      return pick({ "#", "# comment", "#HELP a b", "", "   ", "# TYPE", "# HELP x" })
    end
    local s = pick(names)
    if rnd(10) < 7 then
      local labs = {}
      for _ = 1, rnd(4) do
        labs[#labs + 1] = string.format('%s%s=%s"%s"', pick(lnames), pick({ "", " " }), pick({ "", " " }), pick(lvals))
      end
      s = s .. pick({ "", " " }) .. "{" .. table.concat(labs, ",") .. pick({ "", "", ",", " " }) .. "}"
    end
    s = s .. pick({ " ", " ", " ", "\t", "  " }) .. pick(vals)
    r = rnd(200)
    if r < 1 then
      s = s .. " 123"
    elseif r < 2 then
      s = s .. pick({ " ", "\t", "\r" })
    end
    return s
  end
  return function()
    local lines = {}
    for _ = 1, rnd(9) do
      lines[#lines + 1] = line()
    end
    return table.concat(lines, "\n") .. (rnd(20) > 0 and "\n" or "")
  end
end

local function generated(seed, n)
  local gen, files = generator(seed), {}
  for i = 1, n do
    files[string.format("g%02d.prom", i)] = gen()
  end
  return files
end

-- The moonwatch components of the spec (one pipeline) and the node_exporter runs they are
-- compared with: label -> { lua = block lines, ne = flags, collectors = {...} }.
local tree = tmp .. "/tree"
local RUNS = {}
local function run(label, collectors, lua, ne)
  RUNS[#RUNS + 1] = { label = label, collectors = collectors, lua = lua or "", ne = ne or {} }
end
run("all", COLLECTORS, string.format("textfile = { directory = %q },", tree .. "/textfile"),
  { "--collector.textfile.directory=" .. tree .. "/textfile" })
run("arp_include", { "arp" }, 'arp = { device_include = "^eth" },', { "--collector.arp.device-include=^eth" })
run("arp_exclude", { "arp" }, 'arp = { device_exclude = "^eth" },', { "--collector.arp.device-exclude=^eth" })
run("netclass_options", { "netclass" },
  'netclass = { ignored_devices = "^(lo|ignored.*)$", ignore_invalid_speed_device = true },',
  { "--collector.netclass.ignored-devices=^(lo|ignored.*)$", "--collector.netclass.ignore-invalid-speed" })
run("powersupply_ignored", { "powersupplyclass" }, 'powersupply = { ignored_supplies = "^BAT" },',
  { "--collector.powersupply.ignored-supplies=^BAT" })
run("textfile_edge", { "textfile" }, string.format("textfile = { directory = %q },", tmp .. "/edge"),
  { "--collector.textfile.directory=" .. tmp .. "/edge" })
run("textfile_glob", { "textfile" }, string.format("textfile = { directory = %q },", tmp .. "/glob/d*"),
  { "--collector.textfile.directory=" .. tmp .. "/glob/d*" })
run("textfile_missing", { "textfile" }, string.format("textfile = { directory = %q },", tmp .. "/nowhere"),
  { "--collector.textfile.directory=" .. tmp .. "/nowhere" })
run("textfile_none", { "textfile" }, 'textfile = { directory = "" },', { "--collector.textfile.directory=" })
for seed = 1, 6 do
  run("textfile_generated_" .. seed, { "textfile" }, string.format("textfile = { directory = %q },", tmp .. "/gen" .. seed),
    { "--collector.textfile.directory=" .. tmp .. "/gen" .. seed })
end

describe("prometheus.exporter.unix on a fixture tree against node_exporter 1.5", function()
  local mw
  local ours, theirs = {}, {}

  setup(function()
    assert(io.open(NODE_EXPORTER), "prometheus-node-exporter is not installed (make deps-test)")
    node_tree.build(tree)
    local edge = {}
    for k, v in pairs(REFUSED) do
      edge[k] = v
    end
    for k, v in pairs(ACCEPTED) do
      edge[k] = v
    end
    write_dir(tmp .. "/edge", edge)
    os.execute("mkdir -p " .. proc.quote(tmp .. "/edge/dir.prom")) -- a directory: read as empty
    write_dir(tmp .. "/glob/d1", { ["one.prom"] = 'globbed{d="1"} 1\n' })
    write_dir(tmp .. "/glob/d2", { ["two.prom"] = 'globbed{d="2"} 2\n', ["bad.prom"] = "x y\n" })
    write_dir(tmp .. "/glob/other", { ["three.prom"] = 'globbed{d="3"} 3\n' })
    for seed = 1, 6 do
      write_dir(tmp .. "/gen" .. seed, generated(seed * 7919, 25))
    end

    local parts = {}
    for _, r in ipairs(RUNS) do
      parts[#parts + 1] = string.format('prometheus.exporter.unix %q {\n  set_collectors = %s,\n  procfs_path = %q,\n'
        .. '  sysfs_path = %q,\n  %s\n}\n', r.label, lua_list(r.collectors), tree .. "/proc", tree .. "/sys", r.lua)
    end
    local pipeline = proc.write(tmp .. "/pipeline.lua", table.concat(parts, "\n"))
    mw = proc.start_run(pipeline, { "--storage.path=" .. tmp .. "/data" })
    for _, r in ipairs(RUNS) do
      theirs[r.label] = get(start_ne(ne_flags(tree, r.collectors, r.ne)))
      ours[r.label] = get(mw.base .. "/api/v0/component/prometheus.exporter.unix." .. r.label .. "/metrics")
    end
  end)

  teardown(function()
    for _, pid in ipairs(ne_pids) do
      os.execute("kill " .. pid .. " 2>/dev/null")
    end
    if mw then
      mw.kill("TERM")
      mw.wait(10)
    end
    os.execute("rm -rf " .. proc.quote(tmp))
  end)

  it("has node_exporter's families and no other, every collector succeeding as node_exporter's", function()
    same_output(theirs.all, ours.all, "all")
    local want = blocks(theirs.all)
    -- the tree has something for each collector (selinux: the host's, as node_exporter reads it)
    for _, c in ipairs(COLLECTORS) do
      assert.is_truthy(want.node_scrape_collector_success:find('collector="' .. c .. '"} 1', 1, true),
        c .. " failed in node_exporter")
    end
  end)

  for _, collector in ipairs(COLLECTORS) do
    it("matches node_exporter for collector " .. collector, function()
      local want, order = blocks(theirs.all)
      local got = blocks(ours.all)
      local checked = 0
      for _, name in ipairs(order) do
        if want[name] and not name:match("^node_scrape_collector_") and owner(name) == collector then
          assert.equals(want[name], got[name], "family " .. name)
          checked = checked + 1
        end
      end
      assert.is_true(checked > 0, "no family compared for " .. collector)
    end)
  end

  it("applies arp's device_include and device_exclude as node_exporter's flags", function()
    same_output(theirs.arp_include, ours.arp_include, "arp_include")
    same_output(theirs.arp_exclude, ours.arp_exclude, "arp_exclude")
    assert.is_truthy(ours.arp_include:find('node_arp_entries{device="eth0"} 3', 1, true))
    assert.is_falsy(ours.arp_include:find('device="veth1"', 1, true))
    assert.is_truthy(ours.arp_exclude:find('node_arp_entries{device="veth1"} 1', 1, true))
  end)

  it("applies netclass's ignored_devices and ignore_invalid_speed_device as node_exporter's flags", function()
    same_output(theirs.netclass_options, ours.netclass_options, "netclass_options")
    assert.is_falsy(ours.netclass_options:find('device="lo"', 1, true))
    assert.is_falsy(ours.netclass_options:find('node_network_speed_bytes{device="veth1"}', 1, true))
  end)

  it("applies powersupply's ignored_supplies as node_exporter's flag", function()
    same_output(theirs.powersupply_ignored, ours.powersupply_ignored, "powersupply_ignored")
    assert.is_falsy(ours.powersupply_ignored:find('power_supply="BAT0"', 1, true))
    assert.is_truthy(ours.powersupply_ignored:find('power_supply="AC"', 1, true))
  end)

  it("reads textfiles as node_exporter: refuses what it refuses, writes the rest the same", function()
    same_output(theirs.textfile_edge, ours.textfile_edge, "textfile_edge")
    for name in pairs(REFUSED) do
      assert.is_falsy(ours.textfile_edge:find(name, 1, true), name .. " was not refused")
    end
    assert.is_truthy(ours.textfile_edge:find("\nnode_textfile_scrape_error 1\n", 1, true))
    assert.is_truthy(ours.textfile_edge:find('many_40{i="40"} 40', 1, true))
    assert.is_truthy(ours.textfile_edge:find('dir.prom"}', 1, true))
  end)

  it("reads a glob of textfile directories, a missing one and none as node_exporter", function()
    same_output(theirs.textfile_glob, ours.textfile_glob, "textfile_glob")
    assert.is_truthy(ours.textfile_glob:find('globbed{d="2"} 2', 1, true))
    assert.is_falsy(ours.textfile_glob:find('globbed{d="3"}', 1, true))
    same_output(theirs.textfile_missing, ours.textfile_missing, "textfile_missing")
    assert.is_truthy(ours.textfile_missing:find("\nnode_textfile_scrape_error 1\n", 1, true))
    same_output(theirs.textfile_none, ours.textfile_none, "textfile_none")
    assert.is_truthy(ours.textfile_none:find("\nnode_textfile_scrape_error 0\n", 1, true))
  end)

  it("reads generated textfiles as node_exporter", function()
    local accepted = 0
    for seed = 1, 6 do
      local label = "textfile_generated_" .. seed
      same_output(theirs[label], ours[label], label)
      for _ in ours[label]:gmatch("node_textfile_mtime_seconds{") do
        accepted = accepted + 1
      end
    end
    assert.is_true(accepted >= 20, "too few generated files accepted: " .. accepted)
  end)

  it("filters hwmon chips by chip_include / chip_exclude (node_exporter 1.7's flags)", function()
    -- Debian's node_exporter 1.5 has no such flags: its output without the excluded chip's series
    local pipeline = proc.write(tmp .. "/hwmon.lua", string.format('prometheus.exporter.unix "ex" {\n'
      .. '  set_collectors = { "hwmon" },\n  sysfs_path = %q,\n  hwmon = { chip_exclude = "nct" },\n}\n'
      .. 'prometheus.exporter.unix "in" {\n  set_collectors = { "hwmon" },\n  sysfs_path = %q,\n'
      .. '  hwmon = { chip_include = "^platform_coretemp" },\n}\n', tree .. "/sys", tree .. "/sys"))
    local h = proc.start_run(pipeline, { "--storage.path=" .. tmp .. "/data2" })
    local ex = get(h.base .. "/api/v0/component/prometheus.exporter.unix.ex/metrics")
    local inc = get(h.base .. "/api/v0/component/prometheus.exporter.unix.in/metrics")
    h.kill("TERM")
    h.wait(10)
    local all = get(start_ne(ne_flags(tree, { "hwmon" })))
    local function without(body, keep)
      local out = {}
      for line in body:gmatch("[^\n]*\n") do
        local chip = line:match('chip="([^"]*)"')
        if not chip or keep(chip) then
          out[#out + 1] = line
        end
      end
      return table.concat(out)
    end
    local function no_empty_families(body) -- families left without series go
      local out, head = {}, nil
      for line in body:gmatch("[^\n]*\n") do
        if line:match("^# HELP ") then
          head = line
        elseif line:match("^# TYPE ") then
          head = head .. line
        else
          if head then
            out[#out + 1] = head
            head = nil
          end
          out[#out + 1] = line
        end
      end
      return table.concat(out)
    end
    same_output(no_empty_families(without(all, function(c)
      return not c:find("nct", 1, true)
    end)), ex, "chip_exclude")
    same_output(no_empty_families(without(all, function(c)
      return c:find("^platform_coretemp") ~= nil
    end)), inc, "chip_include")
    assert.is_truthy(inc:find('chip="platform_coretemp_0"', 1, true))
    assert.is_falsy(inc:find('chip="platform_nct6775_656"', 1, true))
  end)

  it("refuses the textfiles node_exporter panics on, without crashing", function()
    local dir = write_dir(tmp .. "/panics", {
      ["dunder.prom"] = 'dund{__foo="x"} 1\n',
      ["gauge_histogram.prom"] = "# TYPE gh gauge_histogram\ngh 1\n",
      ["fine.prom"] = "fine 1\n",
    })
    local pipeline = proc.write(tmp .. "/panics.lua", string.format('prometheus.exporter.unix "p" {\n'
      .. '  set_collectors = { "textfile" },\n  textfile = { directory = %q },\n}\n', dir))
    local h = proc.start_run(pipeline, { "--storage.path=" .. tmp .. "/data3" })
    local body = get(h.base .. "/api/v0/component/prometheus.exporter.unix.p/metrics")
    body = body .. get(h.base .. "/api/v0/component/prometheus.exporter.unix.p/metrics") -- still up
    h.kill("TERM")
    h.wait(10)
    assert.is_truthy(body:find("\nfine 1\n", 1, true))
    assert.is_falsy(body:find("dund", 1, true))
    assert.is_falsy(body:find("\ngh ", 1, true))
    assert.is_truthy(body:find("\nnode_textfile_scrape_error 1\n", 1, true))
  end)
end)
