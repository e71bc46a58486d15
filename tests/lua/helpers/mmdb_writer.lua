--- helpers.mmdb_writer: a small MaxMind DB (.mmdb) writer for tests: an IPv6 tree (IPv4
-- networks under ::/96) with 24-bit records, the data section and the metadata as MaxMind's
-- format specification lays them out.
--
--   local bytes = writer.build({ { "81.2.69.0/24", { city = { names = { en = "London" } } } } })
local bit = require("bit")

local M = {}

local function be(v, n)
  local t = {}
  for i = n, 1, -1 do
    t[i] = string.char(v % 256)
    v = math.floor(v / 256)
  end
  return table.concat(t)
end

local function double_bytes(x)
  if x == 0 then
    return string.rep("\0", 8)
  end
  local sign = x < 0 and 1 or 0
  x = math.abs(x)
  local m, e = math.frexp(x) -- x = m * 2^e, 0.5 <= m < 1
  local exp = e - 1 + 1023
  local mant = (m * 2 - 1) * 2 ^ 52
  local hi = sign * 2048 + exp -- 12 bits
  local top = math.floor(mant / 2 ^ 48) -- each part below 2^53: exact
  return string.char(math.floor(hi / 16), (hi % 16) * 16 + top) .. be(mant - top * 2 ^ 48, 6)
end

local function ctrl(t, size)
  local ext = t > 7
  local head = ext and 0 or bit.lshift(t, 5)
  local s
  if size < 29 then
    s = string.char(head + size)
  elseif size < 285 then
    s = string.char(head + 29) .. string.char(size - 29)
  else
    s = string.char(head + 30) .. be(size - 285, 2)
  end
  if ext then
    s = s:sub(1, 1) .. string.char(t - 7) .. s:sub(2)
  end
  return s
end

--- The encoding of a Lua value: strings, integers (uint32, or uint64 past it), other numbers
--- (double), booleans, lists (arrays) and tables (maps).
function M.encode(v)
  local t = type(v)
  if t == "string" then
    return ctrl(2, #v) .. v
  elseif t == "boolean" then
    return ctrl(14, v and 1 or 0)
  elseif t == "number" then
    if v % 1 == 0 and v >= 0 and v < 2 ^ 32 then
      local b = be(v, 4):gsub("^%z+", "")
      return ctrl(6, #b) .. b
    elseif v % 1 == 0 and v >= 0 then
      local b = be(v, 8):gsub("^%z+", "")
      return ctrl(9, #b) .. b
    end
    return ctrl(3, 8) .. double_bytes(v)
  elseif t == "table" then
    if #v > 0 or next(v) == nil and getmetatable(v) == M.ARRAY then
      local parts = { ctrl(11, #v) }
      for _, x in ipairs(v) do
        parts[#parts + 1] = M.encode(x)
      end
      return table.concat(parts)
    end
    local keys = {}
    for k in pairs(v) do
      keys[#keys + 1] = k
    end
    table.sort(keys)
    local parts = { ctrl(7, #keys) }
    for _, k in ipairs(keys) do
      parts[#parts + 1] = M.encode(k) .. M.encode(v[k])
    end
    return table.concat(parts)
  end
  error("mmdb_writer: cannot encode " .. t)
end
M.ARRAY = {}

-- The 128 bits of an IPv4 (under ::/96) or IPv6 network, and its prefix length in them.
local function network_bits(cidr)
  local addr, len = cidr:match("^(.-)/(%d+)$")
  len = tonumber(len)
  local bytes = {}
  if addr:find(".", 1, true) then
    for _ = 1, 12 do
      bytes[#bytes + 1] = 0
    end
    for x in addr:gmatch("%d+") do
      bytes[#bytes + 1] = tonumber(x)
    end
    len = len + 96
  else
    local mmdb = require("loki.process.mmdb")
    bytes = assert(mmdb.parse_ip(addr))
  end
  local bits = {}
  for i = 1, len do
    bits[i] = bit.band(bit.rshift(bytes[bit.rshift(i - 1, 3) + 1], 7 - bit.band(i - 1, 7)), 1)
  end
  return bits
end

--- A database of networks { { "cidr", record }, ... } as the bytes of an .mmdb file.
function M.build(networks, metadata)
  -- the tree: node = { [0] = child, [1] = child }, a child a node, a data index or nil
  local root = {}
  local data, offsets = {}, {}
  for i, n in ipairs(networks) do
    local enc = M.encode(n[2])
    offsets[i] = #table.concat(data)
    data[#data + 1] = enc
    local bits, node = network_bits(n[1]), root
    for k = 1, #bits - 1 do
      local b = bits[k]
      if type(node[b]) ~= "table" then
        node[b] = {}
      end
      node = node[b]
    end
    node[bits[#bits]] = { data = i }
  end
  -- number the nodes breadth first
  local order, queue = {}, { root }
  while #queue > 0 do
    local n = table.remove(queue, 1)
    if not n.data then
      order[#order + 1] = n
      n.id = #order - 1
      for b = 0, 1 do
        if n[b] then
          queue[#queue + 1] = n[b]
        end
      end
    end
  end
  local count = #order
  local tree = {}
  for _, n in ipairs(order) do
    for b = 0, 1 do
      local c = n[b]
      local v = count -- empty
      if c and c.data then
        v = count + 16 + offsets[c.data]
      elseif c then
        v = c.id
      end
      tree[#tree + 1] = be(v, 3)
    end
  end
  local md = { node_count = count, record_size = 24, ip_version = 6, database_type = "Test",
    binary_format_major_version = 2, binary_format_minor_version = 0, build_epoch = 1700000000,
    languages = { "en" }, description = { en = "moonwatch test database" } }
  for k, v in pairs(metadata or {}) do
    md[k] = v
  end
  return table.concat(tree) .. string.rep("\0", 16) .. table.concat(data) .. "\171\205\239MaxMind.com"
    .. M.encode(md)
end

return M
