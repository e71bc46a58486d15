--- moonwatch.receiver: receivers of every signal kind, and the one fan-out helper.
-- A receiver is what a component exports for others to send data to (its `receiver`
-- export, which they list in their forward_to): a table made by M.new,
--
--   { kind = "metrics", id = "<component id>", append = function(self, batch) ... end }
--
-- whose kind says which batch type append takes:
--   metrics  a samples batch (moonwatch.batch.samples)
--   logs     a log-entry batch (moonwatch.batch.logs; reserved: no component sends logs yet)
--   profiles a profiles batch (moonwatch.batch.profiles: labels and pprof bytes per profile)
-- (traces come with their issue). A batch is valid only during append:
-- a receiver copies what it keeps. The schema checks kinds when the pipeline is checked:
-- an argument of type "receivers" takes metrics receivers only, "log_receivers" logs
-- receivers only, and anything else is refused with the declaration's file:line.
--
-- A component that forwards sends each batch with M.fanout(ctx):send(receivers, batch):
-- every receiver gets the batch even when another one raises; a receiver's error is
-- counted (moonwatch_component_forward_errors_total{component_id, receiver}) and
-- logged, at most once per LOG_EVERY seconds for each receiver (with how many were
-- not logged in between).
local M = {}

--- The signal kinds: kind -> how messages name its receivers.
M.KINDS = { metrics = "a metrics receiver", logs = "a log receiver" }
M.KINDS.profiles = "a profiles receiver" -- h20-prof

--- The kind of receiver an export type stands for (schema export types "receiver", "log_receiver").
M.EXPORT_KIND = { receiver = "metrics", log_receiver = "logs" }
M.EXPORT_KIND.profile_receiver = "profiles" -- h20-prof

--- Seconds between two logged errors of one receiver of one component.
M.LOG_EVERY = 10

--- A receiver of the given kind for component id: append(self, batch) gets each batch.
---@param kind string "metrics" or "logs"
---@param id string the receiving component's id (names it in errors, metrics and the debug API)
---@param append fun(self: table, batch: any)
---@return table receiver { kind, id, append }
function M.new(kind, id, append)
  if not M.KINDS[kind] then
    local kinds = {}
    for k in pairs(M.KINDS) do
      kinds[#kinds + 1] = k
    end
    table.sort(kinds)
    error(string.format("unknown receiver kind %q (one of: %s)", tostring(kind), table.concat(kinds, ", ")), 2)
  end
  if type(append) ~= "function" then
    error("a receiver needs an append function", 2)
  end
  return { kind = kind, id = id, append = append }
end

--- A metrics receiver (append gets samples batches).
---@param id string
---@param append fun(self: table, batch: ffi.cdata*)
function M.metrics(id, append)
  return M.new("metrics", id, append)
end

--- A logs receiver (append gets log-entry batches, moonwatch.batch.logs).
---@param id string
---@param append fun(self: table, batch: table)
function M.logs(id, append)
  return M.new("logs", id, append)
end

--- A profiles receiver (append gets profiles batches, moonwatch.batch.profiles).
---@param id string
---@param append fun(self: table, batch: table)
function M.profiles(id, append)
  return M.new("profiles", id, append)
end

--- The kind of v if it is a receiver (a table with a known kind and an append function), else nil.
---@param v any
---@return string|nil
function M.kind_of(v)
  if type(v) == "table" and M.KINDS[v.kind] and type(v.append) == "function" then
    return v.kind
  end
  return nil
end

local family
local Fanout = {}
Fanout.__index = Fanout

--- The fan-out of component ctx (a component context, or any { id, log }): its
--- send(receivers, batch) calls every receiver's append with batch. Keep one per
--- component (its error counters and log rate limits live in it).
---@param ctx table
---@return table fanout
function M.fanout(ctx)
  family = family or require("moonwatch.metrics").default:counter("moonwatch_component_forward_errors_total",
    "Batches a component sent to a receiver that raised an error (the other receivers still got them).",
    { "component_id", "receiver" })
  return setmetatable({ ctx = ctx, per = {} }, Fanout)
end

-- A receiver's failure: counted, and logged unless one was logged less than LOG_EVERY ago.
function Fanout:failed(r, err)
  local rid = tostring(r.id)
  local st = self.per[rid]
  if not st then
    st = { counter = family:with(self.ctx.id, rid), logged = nil, quiet = 0 }
    self.per[rid] = st
  end
  st.counter:inc()
  local now = require("moonwatch.ffi").monotonic()
  if st.logged and now - st.logged < M.LOG_EVERY then
    st.quiet = st.quiet + 1
    return
  end
  local kv = { receiver = rid, err = require("moonwatch.errors").report(err, rid, nil, self.ctx.log) }
  if st.quiet > 0 then
    kv.not_logged = st.quiet -- failures since the last one logged
  end
  self.ctx.log:error("receiver failed", kv)
  st.logged, st.quiet = now, 0
end

--- Sends batch to every receiver of the list, in order; one that raises does not stop the others.
---@param receivers table[] the component's forward_to
---@param batch any a batch of the receivers' kind
function Fanout:send(receivers, batch)
  for i = 1, #receivers do
    local r = receivers[i]
    local ok, err = xpcall(r.append, debug.traceback, r, batch)
    if not ok then
      self:failed(r, err)
    end
  end
end

return M
