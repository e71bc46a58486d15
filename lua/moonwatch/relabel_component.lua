--- moonwatch.relabel_component: what the relabeling components (prometheus.relabel,
--- loki.relabel, discovery.relabel) share beyond the rule schema (moonwatch.relabel.RULE,
--- validate_rule_arg): compiling the rule argument, and the slow path that runs Lua function
--- rules for the misses of a native relabel cache.
local errors = require("moonwatch.errors")
local relabel = require("moonwatch.relabel")
local budget = require("moonwatch.budget")

local M = {}

--- The rule argument compiled into a pipeline (moonwatch.relabel.pipeline); raises "rule: ..."
--- (the component's arguments are wrong) when it does not compile.
---@param rules table the rule argument
---@return table segs
function M.compile(rules)
  local segs, err = relabel.pipeline(rules)
  if not segs then
    error("rule: " .. err, 0)
  end
  return segs
end

--- The slow path: runs the Lua pipeline self.segs for the misses of self.cache's last apply (a
--- relabel cache: misses(), miss(k), put(key, encoded)), all of them within one time budget
--- (moonwatch.budget): when the Lua rules take longer, the misses left are dropped and the error
--- logged once. A miss whose rules fail or whose output is rejected is dropped and logged.
---@param b cdata the input batch
---@param labels fun(b, key): table the input label set of a miss (batch.labels, logs.stream_labels)
---@param what table { one = "the series is dropped", left = "the series left" }: log wording
---@return integer n the number of misses
function M.fill_misses(self, b, labels, what)
  local cache, log = self.cache, self.ctx.log
  local n = cache:misses()
  local function put(key, out)
    local ok, err = cache:put(key, out)
    if not ok then
      log:error("relabel rule output rejected; " .. what.one, { err = err })
      cache:put(key, "")
    end
  end
  local stop, timeout = budget.call(function()
    for k = 0, n - 1 do
      local key = cache:miss(k)
      local ok, out = xpcall(relabel.apply, debug.traceback, self.segs, labels(b, key))
      if not ok then
        local msg = errors.report(out, self.ctx.id, nil, log)
        if budget.is_timeout(msg) then
          return k, msg
        end
        log:error("relabel rule failed; " .. what.one, { err = msg })
        out = nil
      end
      put(key, out and relabel.encode(out) or "")
    end
  end)
  if stop then
    log:error("relabel rule took too long; " .. what.left .. " in this batch are dropped",
      { err = timeout, dropped = n - stop })
    for j = stop, n - 1 do
      put(cache:miss(j), "")
    end
  end
  return n
end

--- Relabels batch b through self.cache: one apply; with Lua rules (not self.native), the misses
--- computed by fill_misses (labels, what: as there) and a second apply that takes their
--- results. Raises the cache's error. Returns the counts of the last apply (owned by the
--- cache) and the hits and misses of the first (what the component counts as hits, misses).
---@return table st, number hits, number misses
function M.apply(self, b, labels, what)
  local st, err = self.cache:apply(b)
  if not st then
    error(err, 0)
  end
  local hits, misses = tonumber(st.hits), tonumber(st.misses)
  if not self.native and M.fill_misses(self, b, labels, what) > 0 then
    st, err = self.cache:apply(b)
    if not st then
      error(err, 0)
    end
  end
  return st, hits, misses
end

return M
