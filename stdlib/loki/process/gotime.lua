--- loki.process's time parsing (stage.timestamp) with Go's layouts: a layout is written as
-- Go's reference time Mon Jan 2 15:04:05 -0700 MST 2006 (time.Parse), or one of the named
-- layouts (RFC3339, RFC3339Nano, ANSIC, ...), or Unix, UnixMs, UnixUs, UnixNs (epoch numbers).
-- A layout is compiled once (M.compile) into chunks; M.parse gives seconds and nanoseconds
-- since the epoch. Zones: an offset in the value wins; a zone name gives offset 0 (as Go does
-- for an abbreviation it does not know) except UTC/GMT; otherwise the location given (an IANA
-- name, read from the system's zoneinfo files) or UTC. With a location, a zone name that the
-- location uses (EST, EDT in America/New_York) has its offset there, as Go's ParseInLocation.
local M = {}

M.NAMED = {
  ANSIC = "Mon Jan _2 15:04:05 2006",
  UnixDate = "Mon Jan _2 15:04:05 MST 2006",
  RubyDate = "Mon Jan 02 15:04:05 -0700 2006",
  RFC822 = "02 Jan 06 15:04 MST",
  RFC822Z = "02 Jan 06 15:04 -0700",
  RFC850 = "Monday, 02-Jan-06 15:04:05 MST",
  RFC1123 = "Mon, 02 Jan 2006 15:04:05 MST",
  RFC1123Z = "Mon, 02 Jan 2006 15:04:05 -0700",
  RFC3339 = "2006-01-02T15:04:05Z07:00",
  RFC3339Nano = "2006-01-02T15:04:05.999999999Z07:00",
  Kitchen = "3:04PM",
  Stamp = "Jan _2 15:04:05",
  StampMilli = "Jan _2 15:04:05.000",
  StampMicro = "Jan _2 15:04:05.000000",
  StampNano = "Jan _2 15:04:05.000000000",
}
M.UNIX = { Unix = 0, UnixMs = 3, UnixUs = 6, UnixNs = 9 } -- digits of fraction in the number

local MONTHS = { "January", "February", "March", "April", "May", "June", "July", "August", "September",
  "October", "November", "December" }
local DAYS = { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" }

-- Chunk kinds, in the order of Go's nextStdChunk's tests at each position.
local PATTERNS = {
  { "January", "longmonth" }, { "Jan", "month" }, { "Monday", "longweekday" }, { "Mon", "weekday" },
  { "MST", "tz" }, { "01", "zeromonth" }, { "02", "zeroday" }, { "03", "zerohour12" }, { "04", "zerominute" },
  { "05", "zerosecond" }, { "06", "year" }, { "002", "zeroyearday" },
  { "15", "hour" }, { "1", "nummonth" }, { "2006", "longyear" }, { "2", "day" },
  { "__2", "underyearday" }, { "_2", "underday" }, { "3", "hour12" }, { "4", "minute" }, { "5", "second" },
  { "PM", "PM" }, { "pm", "pm" },
  { "-07:00:00", "numcolonsecondstz" }, { "-0700", "numtz" }, { "-070000", "numsecondstz" },
  { "-07:00", "numcolontz" }, { "-07", "numshorttz" },
  { "Z07:00:00", "isocolonsecondstz" }, { "Z070000", "isosecondstz" }, { "Z0700", "isotz" },
  { "Z07:00", "isocolontz" }, { "Z07", "isoshorttz" },
}

-- The std chunk at position i of layout: kind, length (and digits for fractions), or nil.
local function chunk_at(layout, i)
  local c = layout:sub(i, i)
  if (c == "." or c == ",") and i < #layout then
    local d = layout:sub(i + 1, i + 1)
    if d == "0" or d == "9" then
      local j = i + 1
      while layout:sub(j, j) == d do
        j = j + 1
      end
      if not layout:sub(j, j):match("%d") then
        return d == "0" and "frac0" or "frac9", j - i, j - i - 1
      end
    end
  end
  if c == "2" and layout:sub(i, i + 3) == "2006" then
    return "longyear", 4
  end
  if c == "0" and layout:sub(i, i + 2) == "002" then
    return "zeroyearday", 3
  end
  if c == "_" and layout:sub(i, i + 4) == "_2006" then
    return nil -- "_" then 2006, as Go
  end
  if c == "-" and layout:sub(i, i + 6) == "-070000" then
    return "numsecondstz", 7
  end
  if c == "Z" and layout:sub(i, i + 6) == "Z070000" then
    return "isosecondstz", 7
  end
  for _, p in ipairs(PATTERNS) do
    local s = p[1]
    if layout:sub(i, i + #s - 1) == s then
      if (s == "Jan" or s == "Mon") and layout:sub(i + #s, i + #s):match("%l") then
        -- "Janet", "Month": not a chunk (Go checks a lowercase letter follows)
        return nil
      end
      if s == "-0700" and layout:sub(i, i + 6) == "-070000" then
        return "numsecondstz", 7
      end
      return p[2], #s
    end
  end
  return nil
end

--- Compiles a layout (a Go layout or a named one) into chunks.
---@param layout string
---@return table compiled
function M.compile(layout)
  if M.UNIX[layout] then
    return { unix = M.UNIX[layout], name = layout }
  end
  local text = M.NAMED[layout] or layout
  local chunks, lit, i = {}, {}, 1
  local has = {}
  while i <= #text do
    local kind, len, digits = chunk_at(text, i)
    if kind then
      if #lit > 0 then
        chunks[#chunks + 1] = { lit = table.concat(lit) }
        chunks[#chunks].space = chunks[#chunks].lit:find(" ", 1, true) ~= nil
        lit = {}
      end
      chunks[#chunks + 1] = { kind = kind, digits = digits }
      has[kind] = true
      i = i + len
    else
      lit[#lit + 1] = text:sub(i, i)
      i = i + 1
    end
  end
  if #lit > 0 then
    chunks[#chunks + 1] = { lit = table.concat(lit) }
    chunks[#chunks].space = chunks[#chunks].lit:find(" ", 1, true) ~= nil
  end
  return { chunks = chunks, has_year = has.longyear or has.year, name = layout, layout = text,
    rfc3339 = text == M.NAMED.RFC3339 or text == M.NAMED.RFC3339Nano }
end

local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
M.days_from_civil = days_from_civil

local function leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end
local MDAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- Reads up to max digits (at least min) at i: number, next index.
local function digits(v, i, min, max)
  local s, e = v:find("^%d+", i)
  if not s then
    return nil
  end
  if e - s + 1 > max then
    e = s + max - 1
  end
  if e - s + 1 < min then
    return nil
  end
  return tonumber(v:sub(s, e)), e + 1
end

local function lookup(v, i, names, short)
  for k, name in ipairs(names) do
    local n = short and name:sub(1, 3) or name
    if v:sub(i, i + #n - 1):lower() == n:lower() then
      return k, i + #n
    end
  end
  return nil
end

-- Zone offsets "+hh", "+hhmm", "+hh:mm", "+hh:mm:ss", "+hhmmss" at i by kind: seconds, next.
local function offset(v, i, kind)
  local sign = v:sub(i, i)
  if sign ~= "+" and sign ~= "-" then
    return nil
  end
  local h, m, s = v:match("^(%d%d)", i + 1), "00", "00"
  if not h then
    return nil
  end
  local j = i + 3
  if kind == "numtz" or kind == "isotz" then
    m = v:match("^(%d%d)", j)
    j = j + 2
  elseif kind == "numcolontz" or kind == "isocolontz" then
    m = v:match("^:(%d%d)", j)
    j = j + 3
  elseif kind == "numsecondstz" or kind == "isosecondstz" then
    m, s = v:match("^(%d%d)(%d%d)", j)
    j = j + 4
  elseif kind == "numcolonsecondstz" or kind == "isocolonsecondstz" then
    m, s = v:match("^:(%d%d):(%d%d)", j)
    j = j + 6
  end
  if not m or not s then
    return nil
  end
  local off = tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(s)
  return sign == "-" and -off or off, j
end

local function frac(v, i, n)
  -- n digits (nil: as many as there are) at i; nanoseconds, next index
  local s, e = v:find("^%d+", i)
  if not s or (n and e - s + 1 < n) then
    return nil
  end
  if n then
    e = s + n - 1
  end
  local d = v:sub(s, math.min(e, s + 8))
  return tonumber(d .. string.rep("0", 9 - #d)), e + 1
end

local byte = string.byte

-- Two digits at i as a number, or nil.
local function d2(v, i)
  local a, b = byte(v, i, i + 1)
  if not b then
    return nil
  end
  a, b = a - 48, b - 48
  if a < 0 or a > 9 or b < 0 or b > 9 then
    return nil
  end
  return a * 10 + b
end

-- YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm): sec, nsec; nil when v is not exactly that.
local function rfc3339(v)
  local n = #v
  if n < 20 or byte(v, 5) ~= 45 or byte(v, 8) ~= 45 or byte(v, 11) ~= 84 or byte(v, 14) ~= 58
    or byte(v, 17) ~= 58 then
    return nil
  end
  local yh, yl, mo, d = d2(v, 1), d2(v, 3), d2(v, 6), d2(v, 9)
  local h, mi, s = d2(v, 12), d2(v, 15), d2(v, 18)
  if not (yh and yl and mo and d and h and mi and s) then
    return nil
  end
  local y = yh * 100 + yl
  local i, ns = 20, 0
  local c = byte(v, i)
  if c == 46 or c == 44 then -- . or ,
    i = i + 1
    local ndigits = 0
    c = byte(v, i)
    while c and c >= 48 and c <= 57 do
      if ndigits < 9 then
        ns = ns * 10 + (c - 48)
        ndigits = ndigits + 1
      end
      i = i + 1
      c = byte(v, i)
    end
    if ndigits == 0 then
      return nil
    end
    for _ = ndigits + 1, 9 do
      ns = ns * 10
    end
  end
  local off
  if c == 90 and i == n then -- Z
    off = 0
  elseif (c == 43 or c == 45) and i + 5 == n and byte(v, i + 3) == 58 then
    local zh, zm = d2(v, i + 1), d2(v, i + 4)
    if not (zh and zm) then
      return nil
    end
    off = (zh * 3600 + zm * 60) * (c == 45 and -1 or 1)
  else
    return nil
  end
  if mo < 1 or mo > 12 or d < 1 or d > MDAYS[mo] + ((mo == 2 and leap(y)) and 1 or 0) or h > 23 or mi > 59
    or s > 59 then
    return nil
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off, ns
end

--- Parses v with a compiled layout. loc: a zone (M.zone) for values without an offset, or nil
--- (UTC). now_year, now_month: today, for a layout without a year (as Alloy's
--- SetYearForLimitedTimeFormat: the year of now, the one before for a December value read in
--- January, the one after for a January value read in December; Feb 29 is read as Go reads it
--- in year 0, a leap year, and moves to Mar 1 in a common year).
---@return number|nil sec, number|string nsec_or_err
function M.parse(c, v, loc, now_year, now_month)
  if c.unix then
    -- as Go's strconv.ParseInt: a sign may lead; a dot needs digits after it
    local int, dot, fr = v:match("^([+-]?%d+)(%.?)(%d*)$")
    if int and int:sub(1, 1) == "+" then
      int = int:sub(2)
    end
    if not int or (dot == ".") ~= (fr ~= "") then
      return nil, string.format("cannot parse %q as %s", v, c.name)
    end
    if c.unix == 0 then
      local sec = tonumber(int)
      local nsec = 0
      if fr ~= "" then
        nsec = tonumber((fr .. "000000000"):sub(1, 9))
      end
      return sec, nsec
    end
    if fr ~= "" then
      return nil, string.format("cannot parse %q as %s", v, c.name)
    end
    local digits_ = c.unix
    local neg = int:sub(1, 1) == "-"
    local abs = neg and int:sub(2) or int
    abs = string.rep("0", digits_ + 1 - #abs) .. abs
    local sec = tonumber(abs:sub(1, #abs - digits_))
    local nsec = tonumber((abs:sub(#abs - digits_ + 1) .. "000000000"):sub(1, 9))
    if neg then
      sec = -sec
      if nsec > 0 then
        sec, nsec = sec - 1, 1000000000 - nsec
      end
    end
    return sec, nsec
  end
  if c.rfc3339 then -- the common case, read byte by byte (no substrings)
    local sec_, nsec_ = rfc3339(v)
    if sec_ then
      return sec_, nsec_
    end
    -- anything else: the general parser says what is wrong
  end
  local year, month, day, hour, min, sec, nsec, yday = nil, 1, 1, 0, 0, 0, 0, nil
  local pm, pmset, off, zname = false, false, nil, nil
  local i = 1
  local chunks = c.chunks
  for k = 1, #chunks do
    local ch = chunks[k]
    local kind = ch.kind
    local ok = true
    if ch.lit then
      local lit = ch.lit
      if not ch.space and v:sub(i, i + #lit - 1) == lit then
        i = i + #lit
      else
        -- Go's skip: a run of spaces in the layout matches a run of spaces in the value (of
        -- any length, none at the end of the value)
        local j = 1
        while j <= #lit do
          if byte(lit, j) == 32 then
            if i <= #v and byte(v, i) ~= 32 then
              ok = false
              break
            end
            j = lit:find("[^ ]", j) or #lit + 1
            i = v:find("[^ ]", i) or #v + 1
          elseif byte(v, i) == byte(lit, j) then
            i, j = i + 1, j + 1
          else
            ok = false
            break
          end
        end
      end
    elseif kind == "longyear" then
      local y = v:match("^%d%d%d%d", i)
      ok = y ~= nil
      if ok then
        year, i = tonumber(y), i + 4
      end
    elseif kind == "year" then
      local y = v:match("^%d%d", i)
      ok = y ~= nil
      if ok then
        year = tonumber(y)
        year = year >= 69 and year + 1900 or year + 2000
        i = i + 2
      end
    elseif kind == "longmonth" or kind == "month" then
      month, i = lookup(v, i, MONTHS, kind == "month")
      ok = month ~= nil
    elseif kind == "longweekday" or kind == "weekday" then
      local wd
      wd, i = lookup(v, i, DAYS, kind == "weekday")
      ok = wd ~= nil
    elseif kind == "nummonth" or kind == "zeromonth" then
      month, i = digits(v, i, kind == "zeromonth" and 2 or 1, 2)
      ok = month ~= nil and month >= 1 and month <= 12
    elseif kind == "day" or kind == "zeroday" or kind == "underday" then
      if kind == "underday" and v:sub(i, i) == " " then
        i = i + 1
      end
      day, i = digits(v, i, kind == "zeroday" and 2 or 1, 2)
      ok = day ~= nil
    elseif kind == "zeroyearday" or kind == "underyearday" then
      yday, i = digits(v, i, 3, 3)
      ok = yday ~= nil
    elseif kind == "hour" then
      hour, i = digits(v, i, 1, 2)
      ok = hour ~= nil and hour < 24
    elseif kind == "hour12" or kind == "zerohour12" then
      hour, i = digits(v, i, kind == "zerohour12" and 2 or 1, 2)
      ok = hour ~= nil and hour <= 12
    elseif kind == "minute" or kind == "zerominute" then
      min, i = digits(v, i, kind == "zerominute" and 2 or 1, 2)
      ok = min ~= nil and min < 60
    elseif kind == "second" or kind == "zerosecond" then
      sec, i = digits(v, i, kind == "zerosecond" and 2 or 1, 2)
      ok = sec ~= nil and sec < 60
      -- Go: a fraction in the value that the layout does not have right here is read anyway
      local nxt = chunks[k + 1]
      if ok and v:sub(i, i):match("[.,]") and v:sub(i + 1, i + 1):match("%d")
        and not (nxt and (nxt.kind == "frac0" or nxt.kind == "frac9")) then
        nsec, i = frac(v, i + 1, nil)
      end
    elseif kind == "frac0" then
      ok = v:sub(i, i):match("[.,]") ~= nil
      if ok then
        nsec, i = frac(v, i + 1, ch.digits)
        ok = nsec ~= nil
      end
    elseif kind == "frac9" then
      if v:sub(i, i):match("[.,]") and v:sub(i + 1, i + 1):match("%d") then
        nsec, i = frac(v, i + 1, nil)
      end
    elseif kind == "PM" or kind == "pm" then
      local p = v:sub(i, i + 1):upper()
      ok = p == "PM" or p == "AM"
      if ok then
        pm, pmset, i = p == "PM", true, i + 2
      end
    elseif kind == "tz" then
      -- Go's parseTimeZone: 3 upper-case letters, or 4 or 5 ending in T (and WITA)
      local name = v:match("^%u%u%u%u?%u?%u?", i) or ""
      if #name == 6 or (#name == 5 and name:sub(5) ~= "T") then
        name = ""
      elseif #name == 4 and name:sub(4) ~= "T" and name ~= "WITA" then
        name = ""
      end
      ok = name ~= ""
      if ok then
        off, zname = 0, name -- an abbreviation: the location's offset for it, else 0 (as Go)
        i = i + #name
      end
    elseif kind:sub(1, 3) == "iso" and v:sub(i, i) == "Z" then
      off, i = 0, i + 1
    else -- numeric zone offsets
      off, i = offset(v, i, kind)
      ok = off ~= nil
    end
    if not ok or i == nil then
      return nil, string.format("cannot parse %q as %q", v, c.layout)
    end
  end
  if i <= #v then
    return nil, string.format("cannot parse %q as %q: extra text %q", v, c.layout, v:sub(i, i + 19))
  end
  if pmset then
    if pm and hour < 12 then
      hour = hour + 12
    elseif not pm and hour == 12 then
      hour = 0
    end
  end
  local no_year = year == nil
  if no_year then
    year = now_year or 0
    if now_month == 1 and month == 12 then
      year = year - 1
    elseif now_month == 12 and month == 1 then
      year = year + 1
    end
  end
  if yday then
    local d = yday
    month = 1
    while month < 12 do
      local md = MDAYS[month] + ((month == 2 and leap(year)) and 1 or 0)
      if d <= md then
        break
      end
      d, month = d - md, month + 1
    end
    day = d
  end
  local md = MDAYS[month] + ((month == 2 and (no_year or leap(year))) and 1 or 0)
  if day < 1 or day > md then
    return nil, string.format("cannot parse %q as %q: day out of range", v, c.layout)
  end
  local t = days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec
  if zname and loc and zname ~= "UTC" then
    off = loc:offset_of_name(zname, t) or 0
  end
  if off then
    t = t - off
  elseif loc then
    t = t - loc:offset_local(t)
  end
  return t, nsec
end

-- Zones (IANA names) from the system's TZif files.
local Zone = {}
Zone.__index = Zone
local zones = {}

local function be(s, i, n, signed)
  local v = 0
  for k = 0, n - 1 do
    v = v * 256 + s:byte(i + k)
  end
  if signed and v >= 2 ^ (8 * n - 1) then
    v = v - 2 ^ (8 * n)
  end
  return v
end

--- The zone of an IANA name ("Europe/Paris", "UTC", "Local"); nil, err when unknown.
function M.zone(name)
  if zones[name] then
    return zones[name]
  end
  if name == "" or name:find("%.%.") or name:sub(1, 1) == "/" then
    return nil, string.format("unknown time zone %q", name)
  end
  local path = name == "Local" and "/etc/localtime" or ("/usr/share/zoneinfo/" .. name)
  if name == "UTC" then
    zones[name] = setmetatable({ trans = {}, idx = {}, offs = { 0 }, first = 1 }, Zone)
    return zones[name]
  end
  local f = io.open(path, "rb")
  local data = f and f:read("*a")
  if f then
    f:close()
  end
  if not data or data:sub(1, 4) ~= "TZif" then
    return nil, string.format("unknown time zone %q (no zoneinfo file %s)", name, path)
  end
  local ok, z = pcall(M.tzif, data)
  if not ok or not z then
    return nil, string.format("unknown time zone %q (zoneinfo file %s is damaged)", name, path)
  end
  zones[name] = z
  return z
end

-- POSIX TZ rules (a TZif file's footer, for the times after its last transition): "EST5EDT,M3.2.0,M11.1.0".
-- A name: letters, or <...>. Returns name, next index.
local function tz_name(r, i)
  if r:sub(i, i) == "<" then
    local j = r:find(">", i, true)
    if not j then
      return nil
    end
    return r:sub(i + 1, j - 1), j + 1
  end
  local n = r:match("^%a%a%a+", i)
  if not n then
    return nil
  end
  return n, i + #n
end

-- [+-]hh[:mm[:ss]] at i: seconds, next index.
local function tz_secs(r, i)
  local sign, h, rest = r:match("^([+-]?)(%d%d?%d?)()", i)
  if not h then
    return nil
  end
  local v, j = tonumber(h) * 3600, rest
  local m = r:match("^:(%d%d)", j)
  if m then
    v, j = v + tonumber(m) * 60, j + 3
    local sec = r:match("^:(%d%d)", j)
    if sec then
      v, j = v + tonumber(sec), j + 3
    end
  end
  return sign == "-" and -v or v, j
end

-- A date rule (Jn, n, Mm.w.d) with its /time at i: { kind, a, b, c, time }, next index.
local function tz_rule(r, i)
  local rule
  local m, w, d, j = r:match("^M(%d%d?)%.(%d)%.(%d)()", i)
  if m then
    rule = { kind = "M", a = tonumber(m), b = tonumber(w), c = tonumber(d) }
  else
    local jn, j2 = r:match("^J(%d+)()", i)
    if jn then
      rule, j = { kind = "J", a = tonumber(jn) }, j2
    else
      local n, j3 = r:match("^(%d+)()", i)
      if not n then
        return nil
      end
      rule, j = { kind = "n", a = tonumber(n) }, j3
    end
  end
  rule.time = 7200
  if r:sub(j, j) == "/" then
    local t, j4 = tz_secs(r, j + 1)
    if not t then
      return nil
    end
    rule.time, j = t, j4
  end
  return rule, j
end

-- The day (days since the epoch) rule names in year y.
local function rule_day(rule, y)
  local jan1 = days_from_civil(y, 1, 1)
  if rule.kind == "J" then -- 1..365, Feb 29 never counted
    return jan1 + rule.a - 1 + ((leap(y) and rule.a >= 60) and 1 or 0)
  elseif rule.kind == "n" then
    return jan1 + rule.a
  end
  local m, w, d = rule.a, rule.b, rule.c
  local first = days_from_civil(y, m, 1)
  local wd1 = (first + 4) % 7 -- 1970-01-01 was a Thursday
  local day = 1 + (d - wd1 + 7) % 7 + (w - 1) * 7
  local md = MDAYS[m] + ((m == 2 and leap(y)) and 1 or 0)
  while day > md do
    day = day - 7
  end
  return first + day - 1
end

--- A POSIX TZ rule string: { std = { off, name }, dst = { off, name }, start, stop } or nil.
function M.tz_rule(r)
  local std, i = tz_name(r, 1)
  if not std then
    return nil
  end
  local soff
  soff, i = tz_secs(r, i)
  if not soff then
    return nil
  end
  local z = { std_name = std, std_off = -soff }
  if i > #r then
    return z
  end
  local dst
  dst, i = tz_name(r, i)
  if not dst then
    return nil
  end
  z.dst_name, z.dst_off = dst, z.std_off + 3600
  if r:sub(i, i) ~= "," and i <= #r then
    local doff
    doff, i = tz_secs(r, i)
    if not doff then
      return nil
    end
    z.dst_off = -doff
  end
  if r:sub(i, i) ~= "," then
    z.start = { kind = "M", a = 3, b = 2, c = 0, time = 7200 } -- the US rules, as Go's default
    z.stop = { kind = "M", a = 11, b = 1, c = 0, time = 7200 }
    return i > #r and z or nil
  end
  z.start, i = tz_rule(r, i + 1)
  if not z.start or r:sub(i, i) ~= "," then
    return nil
  end
  z.stop, i = tz_rule(r, i + 1)
  if not z.stop or i <= #r then
    return nil
  end
  return z
end

-- The offset and name of rule z at UTC time t.
local function rule_at(z, t)
  if not z.dst_name then
    return z.std_off, z.std_name
  end
  local y = math.floor((t + z.std_off) / 86400)
  -- the civil year of that day
  local yy = 1970 + math.floor(y / 365.2425)
  while days_from_civil(yy, 1, 1) > y do
    yy = yy - 1
  end
  while days_from_civil(yy + 1, 1, 1) <= y do
    yy = yy + 1
  end
  local s = rule_day(z.start, yy) * 86400 + z.start.time - z.std_off
  local e = rule_day(z.stop, yy) * 86400 + z.stop.time - z.dst_off
  local in_dst
  if s < e then
    in_dst = t >= s and t < e
  else
    in_dst = not (t >= e and t < s)
  end
  if in_dst then
    return z.dst_off, z.dst_name
  end
  return z.std_off, z.std_name
end

--- A zone from the bytes of a TZif file (nil when they are not one).
function M.tzif(data)
  if data:sub(1, 4) ~= "TZif" then
    return nil
  end
  -- v1 header; use the v2 64-bit block when present
  local function header(at)
    return be(data, at + 20, 4), be(data, at + 24, 4), be(data, at + 28, 4), be(data, at + 32, 4),
      be(data, at + 36, 4), be(data, at + 40, 4)
  end
  local isutc, isstd, leapcnt, timecnt, typecnt, charcnt = header(1)
  local at, tsize = 1, 4
  local footer
  if data:sub(5, 5) >= "2" then
    at = 1 + 44 + timecnt * 5 + typecnt * 6 + charcnt + leapcnt * 8 + isstd + isutc
    isutc, isstd, leapcnt, timecnt, typecnt, charcnt = header(at)
    tsize = 8
    local stop = at + 44 + timecnt * 9 + typecnt * 6 + charcnt + leapcnt * 12 + isstd + isutc
    footer = data:match("^\n([^\n]*)\n", stop)
  end
  local p = at + 44
  local z = { trans = {}, idx = {}, offs = {}, names = {} }
  for k = 1, timecnt do
    z.trans[k] = be(data, p + (k - 1) * tsize, tsize, true)
  end
  p = p + timecnt * tsize
  for k = 1, timecnt do
    z.idx[k] = data:byte(p + k - 1) + 1
  end
  p = p + timecnt
  local chars = data:sub(p + typecnt * 6, p + typecnt * 6 + charcnt - 1)
  for k = 1, typecnt do
    z.offs[k] = be(data, p + (k - 1) * 6, 4, true)
    local at_ = data:byte(p + (k - 1) * 6 + 5) + 1
    z.names[k] = chars:match("^[^%z]*", at_) or ""
  end
  z.first = 1
  if typecnt == 0 then
    return nil
  end
  z.rule = footer and footer ~= "" and M.tz_rule(footer) or nil
  return setmetatable(z, Zone)
end

--- The zone's type (index into offs and names) at UTC time t.
function Zone:type_at(t)
  local trans = self.trans
  if #trans == 0 or t < trans[1] then
    return self.first
  end
  local lo, hi = 1, #trans
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if trans[mid] <= t then
      lo = mid
    else
      hi = mid - 1
    end
  end
  return self.idx[lo]
end

--- The zone's UTC offset (seconds) and abbreviation at UTC time t: after the last transition
--- the TZif footer's rule (a "slim" zoneinfo file has no transitions past the last rule change).
function Zone:info_at(t)
  local trans = self.trans
  if self.rule and (#trans == 0 or t >= trans[#trans]) then
    return rule_at(self.rule, t)
  end
  local k = self:type_at(t)
  return self.offs[k], self.names and self.names[k]
end

--- The zone's UTC offset (seconds) at UTC time t.
function Zone:offset_at(t)
  return (self:info_at(t))
end

--- The offset (seconds) of the zone's abbreviation name at wall time (seconds as if UTC), as
--- Go's Location.lookupName: a type of that name in effect then, else any type of that name;
--- nil when the zone has no such name.
function Zone:offset_of_name(name, wall)
  local names, any = self.names or {}, nil
  for k, n in ipairs(names) do
    if n == name then
      local o = self.offs[k]
      local o2, n2 = self:info_at(wall - o)
      if n2 == name then
        return o2
      end
      any = any or o
    end
  end
  return any
end

--- The offset to subtract from a local wall time (seconds as if UTC) to get UTC.
function Zone:offset_local(wall)
  local o = self:offset_at(wall)
  return self:offset_at(wall - o)
end

return M
