-- label_symbols.lua BODY [TARGETS]: what the label sets of the remote-write benchmark's
-- series take now and what they would take as symbol ids (the next memory step of issue
-- #14: each distinct name or value stored once in a process-wide table, a label set kept as
-- the varint ids of its names and values). BODY is an exposition body of nodelike_bodies.lua;
-- every series is counted once per target, with the instance and job labels a scrape adds.
--   moonwatch lua tests/bench/nodelike_bodies.lua tests/fuzz/corpus/exposition/node_exporter-1.5.0.prom /tmp/nl 2000 1
--   moonwatch lua tests/bench/label_symbols.lua /tmp/nl/body0 200
local path, targets = arg[1], tonumber(arg[2] or 200)
assert(path, "usage: label_symbols.lua BODY [TARGETS]")

local sets = {}
for line in io.lines(path) do
  if line ~= "" and line:sub(1, 1) ~= "#" then
    local head = line:match("^(.-) %S+$")
    local name, labels = head:match("^([^{]+){(.*)}$")
    if not name then
      name, labels = head, ""
    end
    local ls = { { "__name__", name } }
    for k, v in labels:gmatch('([%w_]+)="(.-)"') do
      ls[#ls + 1] = { k, v }
    end
    sets[#sets + 1] = ls
  end
end

local function varint_len(n)
  local len = 1
  while n >= 128 do
    n = math.floor(n / 128)
    len = len + 1
  end
  return len
end

local ids, nsyms, sym_bytes = {}, 0, 0
local function id(s)
  local i = ids[s]
  if not i then
    nsyms = nsyms + 1
    i = nsyms
    ids[s] = i
    sym_bytes = sym_bytes + #s
  end
  return i
end

local by_name = function(a, b)
  return a[1] < b[1]
end
local encoded, coded, nseries = 0, 0, 0
for t = 1, targets do
  for _, base in ipairs(sets) do
    local ls = { { "instance", "t" .. t }, { "job", "200x2000-5s-moonwatch" } }
    for _, l in ipairs(base) do
      ls[#ls + 1] = l
    end
    table.sort(ls, by_name)
    local e, c = 0, 1 -- the coded set's length byte
    for _, l in ipairs(ls) do
      e = e + #l[1] + #l[2] + 2 -- name 0xFF value 0xFF (base/labels.h)
      c = c + varint_len(id(l[1])) + varint_len(id(l[2]))
    end
    encoded, coded, nseries = encoded + e, coded + c, nseries + 1
  end
end
-- a symbol: its bytes, a 16-byte header (length, refcount) and an 8-byte slot in each direction
local table_bytes = sym_bytes + nsyms * (16 + 16)
print(string.format("%d series, %d distinct names and values (%d bytes)", nseries, nsyms, sym_bytes))
print(string.format("encoded label sets (now):  %6.1f B/series", encoded / nseries))
print(string.format("symbol ids (varint):       %6.1f B/series + the symbol table's %.1f B/series", coded / nseries,
  table_bytes / nseries))
