--- moonwatch.dataflow: the samples that flow on each edge of the data-flow graph.
-- An edge runs from the component that sends data to the one that gets it: a component
-- that references another's receiver in its forward_to sends to it; one that references
-- another's other exports (an exporter's targets, a discovery's output) gets its data
-- from it. The controller hands a component, in place of each receiver it references, a
-- proxy made here (M.wrap): the proxy counts the samples of every batch on the edge (one
-- FFI call a batch, no per-sample work), hands the batch on untouched, and lets
-- moonwatch.livedebug see it when either end is switched on. Samples that arrive by
-- another way (a scrape of an exporter's in-memory target) are counted with M.add.
-- Each edge keeps its total (also moonwatch_dataflow_samples_total{component_id,
-- to_component_id}) and its counts per second of the last MAX_WINDOW seconds, for rates.
local ffi_rt = require("moonwatch.ffi")
local metrics = require("moonwatch.metrics")
local livedebug = require("moonwatch.livedebug")

local batch_len, batch_hists = require("moonwatch.batch").len, require("moonwatch.batch").histogram_count
local floor = math.floor

local M = {}

--- Longest window a rate may be asked over, in seconds.
M.MAX_WINDOW = 300

local edges = {} -- [from .. "\0" .. to] = edge
local proxies = {} -- [from .. "\0" .. to .. "\0" .. export] = { receiver = r, proxy = p }

local family
local function counter(from, to)
  family = family or metrics.default:counter("moonwatch_dataflow_samples_total",
    "Samples a component sent to another: the edges of the data-flow graph (for an exporter, "
      .. "the samples scraped from it).", { "component_id", "to_component_id" })
  return family:with(from, to)
end

local function edge(from, to)
  local key = from .. "\0" .. to
  local e = edges[key]
  if not e then
    e = { from = from, to = to, total = 0, secs = {}, counts = {}, counter = counter(from, to) }
    edges[key] = e
  end
  return e
end

local function count(e, n)
  e.total = e.total + n
  e.counter:add(n)
  local s = floor(ffi_rt.monotonic())
  local i = s % M.MAX_WINDOW + 1
  if e.secs[i] ~= s then
    e.secs[i], e.counts[i] = s, 0
  end
  e.counts[i] = e.counts[i] + n
end

--- Counts n samples that went from component `from` to component `to`.
---@param from string
---@param to string
---@param n integer
function M.add(from, to, n)
  if n > 0 then
    count(edge(from, to), n)
  end
end

--- The receiver that component `from` is to use in place of receiver r, an export
--- (named export) of component `to`: the same proxy as long as r is the same.
---@param from string sender's id
---@param to string receiver's component id
---@param export string the export's name ("receiver")
---@param r table the receiver { id, append = fn(self, batch), ... }
---@return table proxy (its other fields are r's)
function M.wrap(from, to, export, r)
  local key = from .. "\0" .. to .. "\0" .. export
  local p = proxies[key]
  if p and p.receiver == r then
    return p.proxy
  end
  -- the edge (and its series) exists from the first batch: a reload that fails after
  -- making proxies leaves no series behind
  local ekey = from .. "\0" .. to
  local on = livedebug.on
  local proxy = setmetatable({ append = function(_, b)
    local n = batch_len(b) + batch_hists(b) -- float and histogram samples
    if n > 0 then
      count(edges[ekey] or edge(from, to), n)
      if on[from] then
        livedebug.capture(from, "out", to, b, n)
      end
      if on[to] then
        livedebug.capture(to, "in", from, b, n)
      end
    end
    return r:append(b)
  end }, { __index = r })
  proxies[key] = { receiver = r, proxy = proxy }
  return proxy
end

--- The edge's samples per second over the last `window` seconds (this one included).
---@param e table
---@param window integer
---@param now_s integer|nil
local function rate(e, window, now_s)
  now_s = now_s or floor(ffi_rt.monotonic())
  local sum = 0
  for i = 1, M.MAX_WINDOW do
    local s = e.secs[i]
    if s and s > now_s - window and s <= now_s then
      sum = sum + e.counts[i]
    end
  end
  return sum / window
end

--- Every edge that has counted samples: { from, to, samples_total, rate } with the rate
--- in samples per second over the last `window` seconds (1 to MAX_WINDOW).
---@param window integer
---@return table[]
function M.edges(window)
  local now_s = floor(ffi_rt.monotonic())
  local out = {}
  for _, e in pairs(edges) do
    out[#out + 1] = { from = e.from, to = e.to, samples_total = e.total, rate = rate(e, window, now_s) }
  end
  table.sort(out, function(a, b)
    return a.from < b.from or (a.from == b.from and a.to < b.to)
  end)
  return out
end

--- Forgets a component removed from the pipeline: its edges (and their series) and proxies.
---@param id string
function M.forget(id)
  for key, e in pairs(edges) do
    if e.from == id or e.to == id then
      edges[key] = nil
      family:remove(e.from, e.to)
    end
  end
  for key in pairs(proxies) do
    local from, to = key:match("^([^%z]*)%z([^%z]*)%z")
    if from == id or to == id then
      proxies[key] = nil
    end
  end
end

return M
