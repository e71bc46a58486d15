-- End-to-end: discovery.file (file_sd JSON and YAML) feeding discovery.relabel, through
-- `moonwatch run`: targets follow file changes both ways, a broken file keeps its last good
-- targets and says so.
local proc = require("helpers.proc")

local tmp = proc.tmpdir()

local component = proc.component

-- The relabeled targets as sorted "k=v,k=v" strings.
local function targets(h)
  return proc.target_strings(component(h, "discovery.relabel.r").exports.output)
end

local function wait_targets(h, want, what)
  local got
  local ok = proc.wait_for(function()
    got = targets(h)
    return table.concat(got, "\n") == table.concat(want, "\n")
  end, 10)
  assert.is_truthy(ok, (what or "targets") .. ": got\n" .. table.concat(got or {}, "\n"))
end

local write_atomic = proc.write_atomic

describe("discovery.file", function()
  local dir, h
  before_each(function()
    dir = tmp .. "/" .. tostring(math.random(1e9))
    os.execute("mkdir -p " .. dir .. "/sd")
  end)
  after_each(function()
    if h then
      h.kill("TERM")
      h.wait(10)
      h = nil
    end
  end)

  local function start()
    local file = proc.write(dir .. "/p.lua", string.format([[
discovery.file "f" {
  files = { %q, %q },
  refresh_interval = "1h", -- changes must come through inotify
}
discovery.relabel "r" {
  targets = discovery.file.f.targets,
  rule = { source_labels = { "__meta_filepath" }, regex = ".*/([^/]+)", target_label = "file" },
}
]], dir .. "/sd/*.json", dir .. "/sd/*.yaml"))
    h = proc.start_run(file)
  end

  it("reads JSON and YAML target groups and follows changes both ways", function()
    proc.write(dir .. "/sd/a.json", [[
[{"targets": ["10.0.0.1:9100", "10.0.0.2:9100"], "labels": {"job": "node", "env": "prod"}},
 {"targets": ["10.0.0.3:8080"]}]
]])
    proc.write(dir .. "/sd/b.yaml", [[
# a comment
- targets:
    - web-1:80
  labels:
    job: web
    port: 80
    quoted: "a: b"
]])
    start()
    local a, b = dir .. "/sd/a.json", dir .. "/sd/b.yaml"
    wait_targets(h, {
      "__address__=10.0.0.1:9100,__meta_filepath=" .. a .. ",env=prod,file=a.json,job=node",
      "__address__=10.0.0.2:9100,__meta_filepath=" .. a .. ",env=prod,file=a.json,job=node",
      "__address__=10.0.0.3:8080,__meta_filepath=" .. a .. ",file=a.json",
      "__address__=web-1:80,__meta_filepath=" .. b .. ",file=b.yaml,job=web,port=80,quoted=a: b",
    }, "initial")
    -- a target removed from a file, another file added
    write_atomic(a, [=[[{"targets": ["10.0.0.1:9100"], "labels": {"job": "node"}}]]=])
    proc.write(dir .. "/sd/c.json", [=[[{"targets": ["new:1"]}]]=])
    wait_targets(h, {
      "__address__=10.0.0.1:9100,__meta_filepath=" .. a .. ",file=a.json,job=node",
      "__address__=new:1,__meta_filepath=" .. dir .. "/sd/c.json,file=c.json",
      "__address__=web-1:80,__meta_filepath=" .. b .. ",file=b.yaml,job=web,port=80,quoted=a: b",
    }, "after the change")
    -- a file deleted takes its targets with it
    os.remove(b)
    wait_targets(h, {
      "__address__=10.0.0.1:9100,__meta_filepath=" .. a .. ",file=a.json,job=node",
      "__address__=new:1,__meta_filepath=" .. dir .. "/sd/c.json,file=c.json",
    }, "after the delete")
    assert.equals("healthy", component(h, "discovery.file.f").health.state)
  end)

  it("keeps a broken file's last good targets, naming the file and position, and recovers", function()
    local a = dir .. "/sd/a.yaml"
    proc.write(a, "- targets: [one:1]\n")
    start()
    wait_targets(h, { "__address__=one:1,__meta_filepath=" .. a .. ",file=a.yaml" })
    write_atomic(a, "- targets: [two:2]\n  labels: {job: [not, a, string]}\n")
    local health = proc.wait_for(function()
      local c = component(h, "discovery.file.f")
      return c.health.state == "unhealthy" and c.health
    end, 10, "unhealthy")
    assert.matches(a .. ": target group 0: labels: the value of \"job\" must be a string", health.message, 1, true)
    assert.is_true(proc.metric(h, "prometheus_sd_file_read_errors_total") >= 1)
    assert.same({ "__address__=one:1,__meta_filepath=" .. a .. ",file=a.yaml" }, targets(h))
    -- a syntax error: line and column
    write_atomic(a, "- targets: [two:2\n  labels: {}\n")
    proc.wait_for(function()
      return component(h, "discovery.file.f").health.message:find(a .. ": line 2, column", 1, true)
    end, 10, "the YAML position")
    write_atomic(dir .. "/sd/j.json", '[{"targets": ["x:1"],\n "labels": {"a": 1}}]')
    proc.wait_for(function()
      return component(h, "discovery.file.f").health.message:find(
        dir .. "/sd/j.json: target group 0: labels: the value of \"a\" must be a string", 1, true)
    end, 10, "the JSON error")
    write_atomic(dir .. "/sd/j.json", '[{"targets": ["x:1"],\n "labels": {"a": }}]')
    proc.wait_for(function()
      return component(h, "discovery.file.f").health.message:find(dir .. "/sd/j.json: line 2, column 18: Expected value", 1, true)
    end, 10, "the JSON position")
    os.remove(dir .. "/sd/j.json")
    write_atomic(a, "- targets: [two:2]\n")
    wait_targets(h, { "__address__=two:2,__meta_filepath=" .. a .. ",file=a.yaml" })
    assert.equals("healthy", component(h, "discovery.file.f").health.state)
  end)

  it("says so when the files hold more targets than it keeps (none are dropped silently)", function()
    -- two files under the 100,000-target bound each, over it together
    for _, name in ipairs({ "a", "b" }) do
      local t = {}
      for i = 1, 60000 do
        t[i] = string.format('"%s%d:80"', name, i)
      end
      proc.write(dir .. "/sd/" .. name .. ".json", '[{"targets": [' .. table.concat(t, ",") .. "]}]")
    end
    start()
    local c = proc.wait_for(function()
      local c = component(h, "discovery.file.f")
      return c.debug_info and c.debug_info.targets == 100000 and c
    end, 20, "100000 targets")
    assert.equals("unhealthy", c.health.state)
    assert.matches("120000 targets, more than 100000: the rest are left out", c.health.message, 1, true)
  end)

  it("takes a null or empty label value as an empty one, as Prometheus does", function()
    -- Prometheus's LabelSet decodes null into "" (JSON and YAML): no reason to refuse the file
    proc.write(dir .. "/sd/a.yaml", "- targets: [n:1]\n  labels:\n    env:\n    job: web\n")
    proc.write(dir .. "/sd/b.json", '[{"targets": ["j:1"], "labels": {"env": null, "job": "x"}}]')
    start()
    wait_targets(h, {
      "__address__=j:1,__meta_filepath=" .. dir .. "/sd/b.json,file=b.json,job=x",
      "__address__=n:1,__meta_filepath=" .. dir .. "/sd/a.yaml,file=a.yaml,job=web",
    })
    assert.equals("healthy", component(h, "discovery.file.f").health.state)
  end)

  it("takes a null target as one without an address, as Prometheus does; refuses a non-string one naming the group", function()
    -- Prometheus decodes targets into a []string: null leaves "" (JSON and YAML), the file is
    -- kept; the target has no address (a scrape drops it), its group's other targets stay
    proc.write(dir .. "/sd/a.json", '[{"targets": [null, "j:1"], "labels": {"job": "x"}}]')
    proc.write(dir .. "/sd/b.yaml", "- targets: [~, y:1]\n  labels: {job: y}\n- targets:\n    -\n    - z:1\n")
    start()
    local a, b = dir .. "/sd/a.json", dir .. "/sd/b.yaml"
    wait_targets(h, {
      "__address__=j:1,__meta_filepath=" .. a .. ",file=a.json,job=x",
      "__address__=y:1,__meta_filepath=" .. b .. ",file=b.yaml,job=y",
      "__address__=z:1,__meta_filepath=" .. b .. ",file=b.yaml",
      "__meta_filepath=" .. a .. ",file=a.json,job=x",
      "__meta_filepath=" .. b .. ",file=b.yaml",
      "__meta_filepath=" .. b .. ",file=b.yaml,job=y",
    })
    local c = component(h, "discovery.file.f")
    assert.equals("healthy", c.health.state, c.health.message)
    -- discovery.file exports it with an empty __address__, as Prometheus's target group has it
    local empty = 0
    for _, t in ipairs(c.exports.targets) do
      if t.__address__ == "" then
        empty = empty + 1
      end
    end
    assert.equals(3, empty)
    -- a number is not a target (Prometheus: "cannot unmarshal number ... of type string"):
    -- the file is refused, naming it and the group
    write_atomic(a, '[{"targets": ["j:1"]}, {"targets": ["k:1", 2]}]')
    local health = proc.wait_for(function()
      local c2 = component(h, "discovery.file.f")
      return c2.health.state == "unhealthy" and c2.health
    end, 10, "unhealthy")
    assert.matches(a .. ": target group 1: targets[1] must be a string", health.message, 1, true)
    -- a field a group does not have: refused in JSON too (Prometheus's Group.UnmarshalJSON
    -- disallows unknown fields: "json: unknown field \"metrics_path\"")
    write_atomic(a, '[{"targets": ["j:1"], "metrics_path": "/m"}]')
    proc.wait_for(function()
      return component(h, "discovery.file.f").health.message:find(
        a .. ': target group 0: unknown field "metrics_path"', 1, true)
    end, 10, "the unknown JSON field")
  end)

  it("refuses YAML aliases (a billion-laughs file cannot expand)", function()
    local a = dir .. "/sd/a.yaml"
    proc.write(a, "- targets: &t [one:1]\n- targets: *t\n")
    start()
    local health = proc.wait_for(function()
      local c = component(h, "discovery.file.f")
      return c.health.state == "unhealthy" and c.health
    end, 10, "unhealthy")
    assert.matches(a .. ": line 1, column 12: anchors are not supported", health.message, 1, true)
  end)

  it("rejects a pattern Prometheus rejects, naming the line", function()
    local file = proc.write(dir .. "/bad.lua", 'discovery.file "f" {\n  files = { "/etc/sd/*/x.json" },\n}\n')
    local code, _, err = proc.run({ "check", file })
    assert.equals(1, code)
    assert.matches('bad.lua:1: discovery.file "f": files[1]: path name "/etc/sd/*/x.json" is not valid for file discovery',
      err, 1, true)
  end)
end)
