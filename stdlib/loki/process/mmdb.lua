--- MaxMind DB files (GeoIP2/GeoLite2 .mmdb) read for stage.geoip: the search tree walked
-- bit by bit for an address, the record decoded from the data section into Lua values
-- (maps as tables, arrays as lists, strings, numbers, booleans), as MaxMind's format
-- specification describes them (https://maxmind.github.io/MaxMind-DB/).
--
--   local db = assert(mmdb.open("/var/lib/GeoLite2-City.mmdb"))
--   local rec = db:lookup("81.2.69.142")  --> { city = { names = { en = "London" } }, ... } or nil
local bit = require("bit")

local byte, sub, find = string.byte, string.sub, string.find
local band, rshift = bit.band, bit.rshift

local M = {}

local METADATA_MARKER = "\171\205\239MaxMind.com"

local DB = {}
DB.__index = DB

-- An unsigned big-endian integer of n bytes of s at 1-based position p (exact up to 2^53).
local function uint(s, p, n)
  local v = 0
  for i = 0, n - 1 do
    v = v * 256 + byte(s, p + i)
  end
  return v
end

-- IEEE 754 big-endian double / float of s at p.
local function double(s, p)
  local b1, b2 = byte(s, p, p + 1)
  local sign = b1 >= 128 and -1 or 1
  local exp = band(b1, 0x7f) * 16 + rshift(b2, 4)
  local mant = band(b2, 0x0f)
  for i = p + 2, p + 7 do
    mant = mant * 256 + byte(s, i)
  end
  if exp == 0 then
    return sign * mant * 2 ^ -1074
  elseif exp == 0x7ff then
    return mant == 0 and sign * math.huge or 0 / 0
  end
  return sign * (1 + mant / 2 ^ 52) * 2 ^ (exp - 1023)
end

local function float(s, p)
  local b1, b2, b3, b4 = byte(s, p, p + 3)
  local sign = b1 >= 128 and -1 or 1
  local exp = band(b1, 0x7f) * 2 + rshift(b2, 7)
  local mant = band(b2, 0x7f) * 65536 + b3 * 256 + b4
  if exp == 0 then
    return sign * mant * 2 ^ -149
  elseif exp == 0xff then
    return mant == 0 and sign * math.huge or 0 / 0
  end
  return sign * (1 + mant / 2 ^ 23) * 2 ^ (exp - 127)
end

-- Decodes the value at byte offset off of the data section that starts at 1-based base:
-- the value and the offset after it. Raises on a malformed file.
-- Values one lookup may decode: pointers let a small file describe a record of any size
-- (an array of pointers to itself), which would hold the loop; real records have hundreds.
local MAX_VALUES = 100000
local budget = MAX_VALUES

local function decode(s, base, off, depth)
  if depth > 64 then
    error("mmdb: data nested too deep", 0)
  end
  budget = budget - 1
  if budget < 0 then
    error(string.format("mmdb: a record of more than %d values", MAX_VALUES), 0)
  end
  local p = base + off
  local ctrl = byte(s, p)
  if not ctrl then
    error("mmdb: data offset out of the file", 0)
  end
  p = p + 1
  local t = rshift(ctrl, 5)
  if t == 1 then -- a pointer: the value is elsewhere, the reading goes on after the pointer
    local ss, v = band(rshift(ctrl, 3), 3), band(ctrl, 7)
    local ptr
    if ss == 0 then
      ptr = v * 256 + byte(s, p)
    elseif ss == 1 then
      ptr = v * 65536 + uint(s, p, 2) + 2048
    elseif ss == 2 then
      ptr = v * 16777216 + uint(s, p, 3) + 526336
    else
      ptr = uint(s, p, 4)
    end
    local value = decode(s, base, ptr, depth + 1)
    return value, p + ss + 1 - base
  end
  if t == 0 then -- extended type
    t = 7 + byte(s, p)
    p = p + 1
  end
  local size = band(ctrl, 0x1f)
  if size == 29 then
    size = 29 + byte(s, p)
    p = p + 1
  elseif size == 30 then
    size = 285 + uint(s, p, 2)
    p = p + 2
  elseif size == 31 then
    size = 65821 + uint(s, p, 3)
    p = p + 3
  end
  if t == 2 then -- UTF-8 string
    return sub(s, p, p + size - 1), p + size - base
  elseif t == 3 then -- double
    return double(s, p), p + 8 - base
  elseif t == 4 then -- bytes
    return sub(s, p, p + size - 1), p + size - base
  elseif t == 5 or t == 6 or t == 9 or t == 10 then -- uint16, uint32, uint64, uint128
    return size == 0 and 0 or uint(s, p, size), p + size - base
  elseif t == 8 then -- int32
    local v = size == 0 and 0 or uint(s, p, size)
    if size == 4 and v >= 2 ^ 31 then
      v = v - 2 ^ 32
    end
    return v, p + size - base
  elseif t == 7 then -- map
    local m, o = {}, p - base
    for _ = 1, size do
      local k, v
      k, o = decode(s, base, o, depth + 1)
      v, o = decode(s, base, o, depth + 1)
      m[k] = v
    end
    return m, o
  elseif t == 11 then -- array
    local a, o = {}, p - base
    for i = 1, size do
      a[i], o = decode(s, base, o, depth + 1)
    end
    return a, o
  elseif t == 14 then -- boolean
    return size ~= 0, p - base
  elseif t == 15 then -- float
    return float(s, p), p + 4 - base
  end
  error("mmdb: unknown data type " .. t, 0)
end

--- Opens a MaxMind DB file: a reader, or nil and an error.
---@param path string
function M.open(path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, err
  end
  local s = f:read("*a")
  f:close()
  if not s then
    return nil, path .. ": cannot be read"
  end
  return M.from_string(s, path)
end

--- A reader of the MaxMind DB file held in s (name: for messages); or nil, err.
function M.from_string(s, name)
  name = name or "mmdb"
  -- the metadata starts after the last marker, within the last 128 KiB
  local at, from = nil, math.max(1, #s - 128 * 1024)
  while true do
    local i = find(s, METADATA_MARKER, from, true)
    if not i then
      break
    end
    at, from = i, i + 1
  end
  if not at then
    return nil, name .. ": not a MaxMind DB file (no metadata marker)"
  end
  budget = MAX_VALUES
  local ok, md = pcall(decode, s, at + #METADATA_MARKER, 0, 0)
  if not ok or type(md) ~= "table" then
    return nil, name .. ": invalid metadata" .. (ok and "" or ": " .. tostring(md))
  end
  local nodes, rs = md.node_count, md.record_size
  if type(nodes) ~= "number" or (rs ~= 24 and rs ~= 28 and rs ~= 32) then
    return nil, string.format("%s: unsupported record size %s", name, tostring(rs))
  end
  local tree = nodes * rs / 4
  if tree + 16 > at then
    return nil, name .. ": search tree larger than the file"
  end
  local db = setmetatable({ s = s, nodes = nodes, rs = rs, node_bytes = rs / 4, data = tree + 16 + 1,
    ip_version = md.ip_version, metadata = md, v4start = 0 }, DB)
  if md.ip_version == 6 then -- IPv4 addresses are under ::/96
    local node = 0
    for _ = 1, 96 do
      if node >= nodes then
        break
      end
      node = db:record(node, 0)
    end
    db.v4start = node
  end
  return db
end

-- Record bit (0 left, 1 right) of node n.
function DB:record(n, right)
  local s, p = self.s, n * self.node_bytes + 1
  local rs = self.rs
  if rs == 24 then
    return uint(s, p + right * 3, 3)
  elseif rs == 32 then
    return uint(s, p + right * 4, 4)
  end
  -- 28 bits: the middle byte's high nibble belongs to the left record, its low one to the right
  local mid = byte(s, p + 3)
  if right == 0 then
    return band(rshift(mid, 4), 0x0f) * 16777216 + uint(s, p, 3)
  end
  return band(mid, 0x0f) * 16777216 + uint(s, p + 4, 3)
end

-- The 4 or 16 bytes of an address in text (IPv4 dotted, IPv6 with :: and an IPv4 tail, as
-- Go's net.ParseIP takes them), or nil.
local function parse_ipv4(t)
  local a, b, c, d = t:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then
    return nil
  end
  local out = {}
  for i, x in ipairs({ a, b, c, d }) do
    local v = tonumber(x)
    if v > 255 or (#x > 1 and x:sub(1, 1) == "0") then
      return nil
    end
    out[i] = v
  end
  return out
end

function M.parse_ip(t)
  if type(t) ~= "string" then
    return nil
  end
  local v4 = parse_ipv4(t)
  if v4 then
    return v4
  end
  if not t:find(":", 1, true) then
    return nil
  end
  local head, tail = t, nil
  local dc = t:find("::", 1, true)
  if dc then
    head, tail = t:sub(1, dc - 1), t:sub(dc + 2)
    if tail:find("::", 1, true) then
      return nil
    end
  end
  local function groups(part)
    local out = {}
    if part == "" then
      return out
    end
    local fields = {}
    for g in (part .. ":"):gmatch("([^:]*):") do
      fields[#fields + 1] = g
    end
    for i, g in ipairs(fields) do
      if i == #fields and g:find(".", 1, true) then
        local four = parse_ipv4(g)
        if not four then
          return nil
        end
        for _, x in ipairs(four) do
          out[#out + 1] = x
        end
      elseif g:match("^%x%x?%x?%x?$") then
        local v = tonumber(g, 16)
        out[#out + 1], out[#out + 2] = rshift(v, 8), band(v, 0xff)
      else
        return nil
      end
    end
    return out
  end
  local h, tl = groups(head), groups(tail or "")
  if not h or not tl then
    return nil
  end
  if dc then
    if #h + #tl > 14 then
      return nil
    end
    local out = {}
    for _, x in ipairs(h) do
      out[#out + 1] = x
    end
    for _ = 1, 16 - #h - #tl do
      out[#out + 1] = 0
    end
    for _, x in ipairs(tl) do
      out[#out + 1] = x
    end
    return out
  end
  return #h == 16 and h or nil
end

--- The record of an address (text), or nil when the database has none; raises on a
--- malformed file. An IPv4-mapped IPv6 address is looked up as its IPv4 address (Go's
--- net.IP holds both alike).
function DB:lookup(ip)
  local b = M.parse_ip(ip)
  if not b then
    return nil
  end
  if #b == 16 then
    local mapped = b[11] == 255 and b[12] == 255
    for i = 1, 10 do
      mapped = mapped and b[i] == 0
    end
    if mapped then
      b = { b[13], b[14], b[15], b[16] }
    end
  end
  local node, nodes = 0, self.nodes
  if #b == 4 then
    node = self.ip_version == 6 and self.v4start or 0
  elseif self.ip_version ~= 6 then
    return nil -- an IPv6 address in an IPv4 database
  end
  for i = 1, #b * 8 do
    if node >= nodes then
      break
    end
    local bitv = band(rshift(b[rshift(i - 1, 3) + 1], 7 - band(i - 1, 7)), 1)
    node = self:record(node, bitv)
  end
  if node == nodes then
    return nil -- no record
  elseif node < nodes then
    error("mmdb: invalid search tree (no record at the end of the address)", 0)
  end
  local off = node - nodes - 16
  budget = MAX_VALUES
  return (decode(self.s, self.data, off, 0))
end

return M
