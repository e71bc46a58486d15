-- nodelike_bodies.lua SOURCE OUTDIR SERIES VERSIONS: writes VERSIONS exposition bodies
-- OUTDIR/body0 ... of SERIES series each, made from a real node_exporter /metrics body
-- (SOURCE): its families in order with their HELP and TYPE lines, each sample line
-- repeated with a replica="K" label until SERIES series are written. Values differ from
-- version to version (the same series, new values), as successive scrapes do.
--   moonwatch lua tests/bench/nodelike_bodies.lua shared/testdata/exposition/node_exporter-1.5.0.prom /tmp/www 2000 10
local source, outdir, nseries, nversions = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
assert(source and outdir and nseries and nversions, "usage: nodelike_bodies.lua SOURCE OUTDIR SERIES VERSIONS")

local samples = {} -- { text before the value, value, family comments before it }
local comments = {}
for line in io.lines(source) do
  if line:sub(1, 1) == "#" then
    comments[#comments + 1] = line
  elseif line ~= "" then
    local head, value = line:match("^(.-) (%S+)$")
    samples[#samples + 1] = { head = head, value = tonumber(value) or 0, comments = comments }
    comments = {}
  end
end
local replicas = math.ceil(nseries / #samples)

-- head with replica="k" added to its labels
local function with_replica(head, k)
  local name, labels = head:match("^([^{]+){(.*)}$")
  if not name then
    return string.format('%s{replica="%d"}', head, k)
  elseif labels == "" then
    return string.format('%s{replica="%d"}', name, k)
  end
  return string.format('%s{%s,replica="%d"}', name, labels, k)
end

-- The shortest text that reads back as x, as exporters print values (Go's strconv 'g', -1).
local function shortest(x)
  for digits = 1, 17 do
    local s = string.format("%." .. digits .. "g", x)
    if tonumber(s) == x then
      return s
    end
  end
  return string.format("%.17g", x)
end

for v = 0, nversions - 1 do
  local out, n = {}, 0
  for _, s in ipairs(samples) do
    if n >= nseries then
      break
    end
    for _, c in ipairs(s.comments) do
      out[#out + 1] = c
    end
    for k = 1, replicas do
      if n >= nseries then
        break
      end
      out[#out + 1] = with_replica(s.head, k) .. " " .. shortest(s.value + v * k)
      n = n + 1
    end
  end
  local f = assert(io.open(string.format("%s/body%d", outdir, v), "w"))
  f:write(table.concat(out, "\n"), "\n")
  f:close()
end
io.stderr:write(string.format("%d bodies of %d series (%d source samples x %d replicas)\n", nversions, nseries,
  #samples, replicas))
