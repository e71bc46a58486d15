--- loki.process's custom metrics (stage.metrics): families named prefix .. name on moonwatch's
-- /metrics registry, labelled component_id and the labels of the entries they count (as
-- Alloy's, whose component registry adds component_id). The label names of a family are the
-- union of those seen: when an entry brings a new label name, the family is registered again
-- with it, counters' and gauges' values carried over (a histogram starts again: its buckets
-- cannot be carried). Families are process-wide (two loki.process components may define the
-- same metric); children are owned by the component that updated them, removed when idle for
-- max_idle_duration and when the component stops or is updated (Alloy resets them on reload).
local metrics = require("moonwatch.metrics")

local M = {}

local SEP = "\31"
local defs = {} -- full name -> { kind, help, buckets, names = {sorted}, has = {}, children = { key -> child } }

local function register(d)
  local labels = { "component_id" }
  for _, n in ipairs(d.names) do
    labels[#labels + 1] = n
  end
  d.fam = metrics.default:family(d.kind, d.name, d.help, labels, d.buckets)
end

-- Registers d again with the label names of labels added.
local function widen(d, labels)
  local saved = {}
  for key, c in pairs(d.children) do
    saved[key] = c
    if d.kind ~= "histogram" then
      c.value = c.child:get()
    end
  end
  for k in pairs(labels) do
    if not d.has[k] then
      d.has[k] = true
      d.names[#d.names + 1] = k
    end
  end
  table.sort(d.names)
  metrics.default:remove_family(d.name)
  register(d)
  d.children = {}
  for _, c in pairs(saved) do
    local vals = { c.component_id }
    for _, n in ipairs(d.names) do
      vals[#vals + 1] = c.labels[n] or ""
    end
    local key = table.concat(vals, SEP)
    c.key, c.child = key, d.fam:with(unpack(vals))
    if c.value and c.value ~= 0 then
      c.child:set(c.value)
    end
    d.children[key] = c
  end
end

--- Checks that a metric can be defined as kind (nil, err when the name is another kind's).
function M.check(name, kind, buckets)
  local d = defs[name]
  if d and d.kind ~= kind then
    return nil, string.format("metric %s is already defined as a %s", name, d.kind)
  end
  if d and kind == "histogram" and table.concat(d.buckets, ",") ~= table.concat(buckets, ",") then
    return nil, string.format("metric %s is already defined with other buckets", name)
  end
  return true
end

--- Makes sure metric name has the label names of labels (before a batch: a family widened
--- then, before its first update of the batch, loses nothing).
function M.prepare(name, kind, help, buckets, labels)
  local d = defs[name]
  if not d then
    d = { name = name, kind = kind, help = help ~= "" and help or ("loki.process custom " .. kind .. "."),
      buckets = buckets, names = {}, has = {}, children = {} }
    defs[name] = d
    register(d)
  end
  for k in pairs(labels) do
    if not d.has[k] and k:sub(1, 2) ~= "__" then
      local own = {}
      for k2, v in pairs(labels) do
        if k2:sub(1, 2) ~= "__" then
          own[k2] = v
        end
      end
      widen(d, own)
      return
    end
  end
end

--- The child of metric name (kind, help, buckets) for component id and an entry's labels
--- (labels whose names start with __ are left out): { child, at, ... }.
function M.child(name, kind, help, buckets, id, labels)
  M.prepare(name, kind, help, buckets, labels)
  local d = defs[name]
  local vals = { id }
  for _, n in ipairs(d.names) do
    vals[#vals + 1] = labels[n] or ""
  end
  local key = table.concat(vals, SEP)
  local c = d.children[key]
  if not c then
    local copy = {}
    for k, v in pairs(labels) do
      copy[k] = v
    end
    c = { def = d, key = key, child = d.fam:with(unpack(vals)), component_id = id, labels = copy, at = 0 }
    d.children[key] = c
  end
  return c
end

--- Removes child c (idle).
function M.remove(c)
  local d = c.def
  if d.children[c.key] == c then
    d.children[c.key] = nil
    local vals = { c.component_id }
    for _, n in ipairs(d.names) do
      vals[#vals + 1] = c.labels[n] or ""
    end
    d.fam:remove(unpack(vals))
  end
end

--- Removes every child of component id (stop, update).
function M.reset(id)
  for _, d in pairs(defs) do
    for _, c in pairs(d.children) do
      if c.component_id == id then
        M.remove(c)
      end
    end
  end
end

-- Go's time.ParseDuration: "1.5h", "300ms", "2h45m", "-1.5us".
local UNIT = { ns = 1e-9, us = 1e-6, ["µs"] = 1e-6, ["μs"] = 1e-6, ms = 1e-3, s = 1, m = 60, h = 3600 }
local function go_duration(s)
  local sign, rest = s:match("^([-+]?)(.+)$")
  local total, any = 0, false
  local i = 1
  while i <= #rest do
    local num, unit = rest:match("^(%d*%.?%d+)([^%d.]+)", i)
    if not num or not UNIT[unit] then
      return nil
    end
    total = total + tonumber(num) * UNIT[unit]
    i = i + #num + #unit
    any = true
  end
  if not any then
    return nil
  end
  return sign == "-" and -total or total
end

--- An extracted value as a float (numbers, numeric strings, Go durations in seconds, booleans), or nil.
function M.float(v)
  local t = type(v)
  if t == "number" then
    return v
  elseif t == "boolean" then
    return v and 1 or 0
  elseif t == "string" then
    return tonumber(v) or go_duration(v)
  end
  return nil
end

return M
