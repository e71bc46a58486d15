-- The examples of Alloy's own reference documentation for every component moonwatch implements
-- (fixtures/alloy/component-examples.md: the documents' ```alloy blocks, unchanged): each,
-- completed where the document shows a fragment, passes `moonwatch check`, converts with
-- `moonwatch convert`, and the converted Lua passes `check` too. The examples moonwatch does
-- not run yet are listed in REFUSED with the error that names what it refuses.
local proc = require("helpers.proc")

local SRC = proc.source
local FIXTURE = SRC .. "/tests/e2e/fixtures/alloy/component-examples.md"
local tmp = proc.tmpdir()

-- Placeholders of the documents -> values. A placeholder written in quotes gets the value in
-- them; one written bare as a value gets it quoted (string placeholders) or as is (lists).
local STRINGS = {
  ["<LABEL>"] = "default", ["<USERNAME>"] = "user", ["<PASSWORD>"] = "pass",
  ["<PROMETHEUS_REMOTE_WRITE_URL>"] = "http://127.0.0.1:9/api/v1/write",
  ["<REMOTE_WRITE_URL>"] = "http://127.0.0.1:9/api/v1/write",
  ["<LOKI_URL>"] = "http://127.0.0.1:9/loki/api/v1/push", ["<URL>"] = "http://127.0.0.1:9/sd",
  ["<PYROSCOPE_URL>"] = "http://127.0.0.1:9", ["<HOST>"] = "127.0.0.1", ["<PORT>"] = "4317",
  ["<FILE_PATH_1>"] = "/tmp/sd/a.json", ["<FILE_PATH_2>"] = "/tmp/sd/b.yaml", ["<FILE_NAME>"] = "/etc/hostname",
  ["<DISCOVERY_ROLE>"] = "pod", ["<STAGENAME>"] = "docker", ["<PROFILE_TYPE>"] = "heap_inuse",
  ["<PROFILE_PATH>"] = "/debug/pprof/allocs",
}
local LISTS = {
  ["<TARGET_LIST>"] = '[{"__address__" = "127.0.0.1:9100", "__path__" = "/var/log/*.log"}]',
  ["<RECEIVER_LIST>"] = "[]",
}

-- What a document gets wrong, Alloy included, and what it is replaced with (document -> list
-- of {pattern, replacement}): checked to match, so a new version of the document shows here.
local DOC_FIXES = {
  -- `#` is no comment in Alloy's syntax (its scanner knows // and /* */ only)
  ["components/discovery/discovery.relabel.md:101"] = { { "\n(%s*)# ", "\n%1// " } },
  -- a placeholder left unnamed
  ["components/local/local.file_match.md:29"] = { { "DOUBLESTAR_PATH", '"/var/log/**/*.log"' } },
  -- Loki URLs without a scheme: Alloy loads them (url.Parse takes "loki" as the scheme) and
  -- every push fails; moonwatch refuses them ("must start with http:// or https://")
  ["components/loki/loki.source.file.md:209"] = { { '"loki:3100/', '"http://loki:3100/' } },
  ["components/loki/loki.source.file.md:231"] = { { '"loki:3100/', '"http://loki:3100/' } },
  ["components/loki/loki.source.file.md:255"] = { { '"loki:3100/', '"http://loki:3100/' } },
  ["components/loki/loki.source.file.md:278"] = { { '"loki:3100/', '"http://loki:3100/' } },
  ["components/loki/loki.source.file.md:306"] = { { '"loki:3100/', '"http://loki:3100/' } },
  ["components/loki/loki.source.journal.md:169"] = { { '"loki:3100/', '"http://loki:3100/' } },
  ["components/loki/loki.source.journal.md:194"] = { { '"loki:3100/', '"http://loki:3100/' } },
  -- otlphttp's endpoint is a URL, not the host:port of the placeholder
  ["components/otelcol/otelcol.exporter.otlphttp.md:28"] = { { '"<HOST>:<PORT>"', '"http://<HOST>:4318"' } },
  -- a list of the list of targets (Alloy refuses it too when it runs)
  ["components/pyroscope/pyroscope.scrape.md:505"] = {
    { "%[discovery%.http%.dynamic_targets%.targets%]", "discovery.http.dynamic_targets.targets" } },
}

-- Examples moonwatch refuses (what Alloy documents and moonwatch does not do yet): the error
-- must name it. Each is a bug to fix; remove it here when it is.
local REFUSED = {
  ["components/prometheus/prometheus.remote_write.md:384"] = "endpoint.protobuf_message: io.prometheus.write.v2.Request"
    .. " (Remote-Write 2.0) is not supported by moonwatch: only prometheus.WriteRequest (Remote-Write 1.0)",
}

local DECLARE = {
  { "prometheus%.remote_write%.([%w_]+)%.receiver", 'prometheus.remote_write %q {\n  endpoint {\n'
    .. '    url = "http://127.0.0.1:9/api/v1/write"\n  }\n}\n' },
  { "loki%.write%.([%w_]+)%.receiver", 'loki.write %q {\n  endpoint {\n'
    .. '    url = "http://127.0.0.1:9/loki/api/v1/push"\n  }\n}\n' },
  { "pyroscope%.write%.([%w_]+)%.receiver", 'pyroscope.write %q {\n  endpoint {\n'
    .. '    url = "http://127.0.0.1:9"\n  }\n}\n' },
}

-- A line that starts Alloy configuration: a comment or a block.
local function alloy_line(l)
  return l:find("^//") or l:find('^[%a_][%w_.]* "[^"]*" *{') or l:find("^[%a_][%w_.]* *{")
end

-- The example, runnable: the document's fixes applied, the sample log lines around a
-- loki.process fragment left out, placeholders filled, elisions (`...`) removed, a stage
-- fragment put in a loki.process and a profile block in a pyroscope.scrape, the receivers
-- it refers to declared.
local function complete(name, src)
  for _, fix in ipairs(DOC_FIXES[name] or {}) do
    local n
    src, n = src:gsub(fix[1], fix[2])
    assert(n > 0, name .. ": the fix " .. fix[1] .. " no longer applies")
  end
  local lines = {}
  for l in (src .. "\n"):gmatch("(.-)\n") do
    lines[#lines + 1] = l
  end
  while lines[1] and not alloy_line(lines[1]) do
    table.remove(lines, 1) -- a sample log line, and the blank line after it
  end
  while lines[#lines] and (lines[#lines] == "" or lines[#lines]:find("^%w+: ")) do
    table.remove(lines) -- what a stage extracts from the sample
  end
  src = table.concat(lines, "\n") .. "\n"
  local function value(p)
    return assert(STRINGS[p], name .. ": unknown placeholder " .. p)
  end
  src = src:gsub("stage%.<STAGENAME>", "stage." .. STRINGS["<STAGENAME>"])
  src = src:gsub('"(<[%u%d_]+>)"', LISTS) -- a list placeholder written in quotes
  src = src:gsub('"[^"\n]*"', function(s) -- in a string: the value
    return (s:gsub("<[%u%d_]+>", value))
  end)
  src = src:gsub("<[%u%d_]+>", function(p) -- bare: a list, or the value quoted
    return LISTS[p] or '"' .. value(p) .. '"'
  end)
  src = src:gsub("\n[ \t]*%.%.%.\n", "\n"):gsub(", %.%.%.%]", "]")
  if src:find("^[/%s]*stage%.") or src:find("\nstage%.") and not src:find("loki%.process") then
    src = 'loki.process "default" {\n  forward_to = []\n' .. src .. "}\n"
  elseif src:find("^profile%.") then
    src = 'pyroscope.scrape "default" {\n  targets    = []\n  forward_to = []\n  profiling_config {\n'
      .. src .. "  }\n}\n"
  end
  src = src:gsub('(loki%.process "[%w_]+" {\n)(.-\n}\n)', function(head, body)
    return body:find("forward_to", 1, true) and head .. body or head .. "  forward_to = []\n" .. body
  end)
  src = src:gsub('(prometheus%.scrape "[%w_]+" {\n)(.-\n}\n)', function(head, body)
    return body:find("targets", 1, true) and head .. body or head .. "  targets    = []\n  forward_to = []\n" .. body
  end)
  for _, d in ipairs(DECLARE) do
    local seen = {}
    for label in src:gmatch(d[1]) do
      local decl = string.format(d[2], label)
      if not seen[label] and not src:find(decl:match("^[^{]+"), 1, true) then
        src = src .. decl
      end
      seen[label] = true
    end
  end
  return src
end

local function examples()
  local text = assert(proc.read_file(FIXTURE))
  local out = {}
  for name, block in text:gmatch("\n## (%S+)\n```alloy\n(.-)```") do
    out[#out + 1] = { name = name, src = block }
  end
  return out
end

-- sys.env of the tracing block's example
local ENV = "TEMPO_OTLP_ENDPOINT=127.0.0.1:4317"

describe("Alloy's documented examples of moonwatch's components", function()
  -- 132 examples, 3 processes each: ~22 s in the main build, ~55 s under ASan+UBSan, where the
  -- loading and checking (Lua, with little C) tests nothing more: run in the main build only.
  local it_unsanitized = proc.sanitized() and pending or it
  it_unsanitized("every example passes check, converts, and the converted Lua passes check", function()
    local exs = examples()
    assert.equals(132, #exs)
    local refused, seen, bad = 0, {}, {}
    for n, ex in ipairs(exs) do
      seen[ex.name] = true
      local src = complete(ex.name, ex.src)
      local file = proc.write(string.format("%s/ex%d.alloy", tmp, n), src)
      local code, out, err = proc.run({ "check", file }, { env = ENV })
      local want = REFUSED[ex.name]
      if want then
        refused = refused + 1
        if code ~= 1 then
          bad[#bad + 1] = ex.name .. " passes check now: take it out of REFUSED"
        elseif not err:find(want, 1, true) or err:find("internal error", 1, true) then
          bad[#bad + 1] = ex.name .. ": want " .. want .. ", got " .. err
        end
      elseif code ~= 0 or not out:find("ok %(%d+ components%)") then
        bad[#bad + 1] = ex.name .. ":\n" .. src .. err
      else
        local ccode, lua, cerr = proc.run({ "convert", file })
        local lfile = proc.write(string.format("%s/ex%d.lua", tmp, n), lua)
        local lcode, _, lerr = proc.run({ "check", lfile }, { env = ENV })
        if ccode ~= 0 or lcode ~= 0 then
          bad[#bad + 1] = ex.name .. " (converted):\n" .. lua .. cerr .. lerr
        end
      end
    end
    assert.same({}, bad)
    for name in pairs(REFUSED) do
      assert.is_true(seen[name], name .. " is in REFUSED but not in the fixture")
    end
    for name in pairs(DOC_FIXES) do
      assert.is_true(seen[name], name .. " is in DOC_FIXES but not in the fixture")
    end
    local listed = 0
    for _ in pairs(REFUSED) do
      listed = listed + 1
    end
    assert.equals(listed, refused)
  end)

  it("takes prometheus.remote_write's protobuf_message = prometheus.WriteRequest, refuses others by name", function()
    local conf = 'prometheus.remote_write "a" {\n  endpoint {\n    url = "http://127.0.0.1:9/api/v1/write"\n'
      .. '    protobuf_message = %q\n  }\n}\n'
    local file = proc.write(tmp .. "/pm.alloy", conf:format("prometheus.WriteRequest"))
    assert.equals(0, (proc.run({ "check", file })))
    proc.write(file, conf:format("WriteRequest"))
    local code, _, err = proc.run({ "check", file })
    assert.equals(1, code)
    assert.equals(file .. ':4:5: prometheus.remote_write "a": endpoint.protobuf_message: must be '
      .. 'prometheus.WriteRequest or io.prometheus.write.v2.Request, got "WriteRequest"\n', err)
  end)
end)
