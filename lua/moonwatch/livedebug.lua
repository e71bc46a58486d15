--- moonwatch.livedebug: live debugging, as Alloy's: the last samples a component received
--- or emitted, for people watching a pipeline from the UI or the API.
-- Off by default, switched on per component (M.set). While on, every batch that crosses
-- one of the component's data-flow edges (moonwatch.dataflow's receiver proxies) leaves its
-- last samples in the component's ring of `capacity` entries (at most MAX_CAPACITY):
-- at most `capacity` samples of a batch are decoded, so a 100k-sample batch costs no more
-- than a small one. Nothing is kept or formatted for components that are off, and a
-- component nobody has read for IDLE_OFF seconds is switched off again. Samples are data:
-- their labels and values are shown as they are (secrets never travel in samples).
local batch = require("moonwatch.batch.samples")
local ffi_rt = require("moonwatch.ffi")

local M = {}

M.DEFAULT_CAPACITY = 100
M.MAX_CAPACITY = 1000
M.IDLE_OFF = 600

--- [component id] = state, for the components switched on (read on every batch: keep it cheap).
M.on = {}

-- [component id] = state (on or switched off, until forgotten)
local states = {}

local function now()
  return ffi_rt.monotonic()
end

-- Label names and metric names outside the legacy grammar are quoted, as Prometheus 3 writes them.
local function legacy(s)
  return s:find("^[%a_:][%w_:]*$") ~= nil
end

local function quote(s)
  return '"' .. s:gsub('[\\\n"]', { ["\\"] = "\\\\", ["\n"] = "\\n", ['"'] = '\\"' }) .. '"'
end

--- A float as the shortest text that reads back to it (Prometheus's formatting of values).
---@param v number
---@return string
function M.format_value(v)
  if v ~= v then
    return "NaN"
  elseif v == math.huge then
    return "+Inf"
  elseif v == -math.huge then
    return "-Inf"
  end
  for digits = 15, 17 do
    local s = string.format("%." .. digits .. "g", v)
    if tonumber(s) == v then
      return s
    end
  end
  return string.format("%.17g", v)
end

--- A sample's series as exposition text: name{a="b",...} (names sorted, UTF-8 names quoted).
---@param labels table name -> value
---@return string
function M.format_series(labels)
  local names = {}
  for k in pairs(labels) do
    if k ~= "__name__" then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  local parts = {}
  local name = labels.__name__ or ""
  local head = name
  if name ~= "" and not legacy(name) then
    parts[1] = quote(name)
    head = ""
  end
  for _, k in ipairs(names) do
    parts[#parts + 1] = (legacy(k) and k or quote(k)) .. "=" .. quote(labels[k])
  end
  if #parts == 0 then
    return head
  end
  return head .. "{" .. table.concat(parts, ",") .. "}"
end

local function new_state(capacity)
  return { enabled = false, capacity = capacity, ring = {}, head = 0, seq = 0, samples = 0, batches = 0,
    expires = 0 }
end

--- Switches live debugging of a component on or off, or changes its capacity. Switching
--- on again keeps what the ring holds; a new capacity empties it.
---@param id string component id
---@param opts table { enabled = bool, capacity = integer|nil }
---@return table|nil state, string|nil err
function M.set(id, opts)
  local cap = opts.capacity
  if cap ~= nil and (type(cap) ~= "number" or cap ~= math.floor(cap) or cap < 1 or cap > M.MAX_CAPACITY) then
    return nil, string.format("capacity: must be an integer from 1 to %d", M.MAX_CAPACITY)
  end
  if opts.enabled ~= nil and type(opts.enabled) ~= "boolean" then
    return nil, "enabled: must be true or false"
  end
  local st = states[id]
  if not st then
    st = new_state(cap or M.DEFAULT_CAPACITY)
    states[id] = st
  elseif cap and cap ~= st.capacity then
    st.capacity, st.ring, st.head = cap, {}, 0
  end
  if opts.enabled ~= nil then
    st.enabled = opts.enabled
  end
  if st.enabled then
    st.expires = now() + M.IDLE_OFF
    M.on[id] = st
  else
    M.on[id] = nil
  end
  return st
end

--- Empties a component's ring (it stays on or off).
---@param id string
function M.clear(id)
  local st = states[id]
  if st then
    st.ring, st.head = {}, 0
  end
end

--- Forgets a component (removed from the pipeline): switched off, its ring dropped.
---@param id string
function M.forget(id)
  states[id], M.on[id] = nil, nil
end

--- Ids of the components switched on, sorted.
---@return string[]
function M.enabled()
  local out = {}
  for id in pairs(M.on) do
    out[#out + 1] = id
  end
  table.sort(out)
  return out
end

--- A component's live-debugging state without its entries: { enabled, capacity, samples,
--- batches, seq } (reading it does not keep the component on).
---@param id string
---@return table
function M.status(id)
  local st = states[id]
  if not st then
    return { enabled = false, capacity = M.DEFAULT_CAPACITY, samples = 0, batches = 0, seq = 0 }
  end
  return { enabled = st.enabled, capacity = st.capacity, samples = st.samples, batches = st.batches, seq = st.seq }
end

--- A component's live-debugging state and the entries newer than `since` (a seq; 0 for
--- all), oldest first: { enabled, capacity, samples, batches, seq, entries }. Reading
--- keeps a component that is on from being switched off as idle.
---@param id string
---@param since integer|nil
---@return table
function M.get(id, since)
  local st = states[id]
  if not st then
    return { enabled = false, capacity = M.DEFAULT_CAPACITY, samples = 0, batches = 0, seq = 0, entries = {} }
  end
  if st.enabled then
    st.expires = now() + M.IDLE_OFF
  end
  since = since or 0
  local entries, n = {}, #st.ring
  for k = 1, n do
    -- oldest first: the ring's next write position is the oldest entry once it is full
    local e = st.ring[(st.head + k - 1) % n + 1]
    if e and e.seq > since then
      entries[#entries + 1] = e
    end
  end
  return { enabled = st.enabled, capacity = st.capacity, samples = st.samples, batches = st.batches,
    seq = st.seq, entries = entries }
end

local function push(st, e)
  st.seq = st.seq + 1
  e.seq = st.seq
  st.head = st.head % st.capacity + 1
  st.ring[st.head] = e
end

--- Records the tail of a batch that crossed an edge, for the component id (switched on):
--- direction "in" (it received the batch from peer) or "out" (it sent it to peer).
---@param id string
---@param direction string "in" or "out"
---@param peer string the component at the other end
---@param b ffi.cdata* mw_batch_t * (valid during this call only)
---@param n integer samples in b
function M.capture(id, direction, peer, b, n)
  local st = M.on[id]
  if not st then
    return
  end
  local t = now()
  if t > st.expires then -- nobody watches any more
    st.enabled, M.on[id] = false, nil
    return
  end
  st.batches = st.batches + 1
  st.samples = st.samples + n
  local wall = ffi_rt.time_now()
  local first = math.max(0, n - st.capacity)
  for i = first, n - 1 do
    local labels = batch.labels(b, i)
    local value = batch.value(b, i)
    local stale = batch.is_stale(b, i)
    local ts = batch.ts(b, i)
    local v = stale and "NaN" or M.format_value(value)
    push(st, {
      time = wall, direction = direction, peer = peer, labels = labels, timestamp = ts, value = v,
      stale = stale or nil,
      sample = M.format_series(labels) .. " " .. v .. " " .. string.format("%d", ts) .. (stale and " (stale marker)" or ""),
    })
  end
end

return M
