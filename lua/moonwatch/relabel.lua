--- moonwatch.relabel: Prometheus relabeling from Lua, on the C rule engine.
-- Rules are declared as Alloy's `rule` blocks and compiled once into a C
-- program (PCRE2-JIT regexes with RE2 semantics, fully anchored). A rule may
-- also be a Lua function(labels) -> labels | nil: the slow path, run only for
-- series the cache has not seen.
local native = require("moonwatch.native.relabel")
local budget = require("moonwatch.budget")

local M = {}

M.ACTIONS = { "replace", "keep", "drop", "keepequal", "dropequal", "hashmod", "labelmap", "labeldrop",
  "labelkeep", "lowercase", "uppercase" }

--- The `rule` block schema (Alloy's relabel rule).
M.RULE = {
  type = "block", repeated = true, allow_function = true, default = {},
  doc = "Relabeling rules, applied in order; a Lua function(labels) -> labels|nil is also accepted.",
  schema = {
    args = {
      source_labels = { type = "list", of = { type = "string" }, default = {},
        doc = "Labels whose values are joined with separator and matched against regex." },
      separator = { type = "string", default = ";", doc = "Separator between joined source label values." },
      regex = { type = "regex", default = "(.*)", doc = "RE2 regular expression, fully anchored." },
      modulus = { type = "uint", default = 0, doc = "Modulus for the hashmod action." },
      target_label = { type = "string", default = "", doc = "Label written by replace, hashmod and others." },
      replacement = { type = "string", default = "$1", doc = "Replacement; $1, ${1}, ${name} expand groups." },
      action = { type = "string", default = "replace", enum = M.ACTIONS, doc = "The relabel action." },
    },
    -- each rule on its own (what its action needs), so that one bad rule hides no other's problem
    validate = function(r)
      local _, err = M.compile({ r })
      return err and (err:gsub("^rule 1: ", "")) or nil
    end,
  },
}

--- Checks that re compiles as an RE2 regex (Go's syntax, as every regex of the runtime).
---@param re string
---@return true|nil ok, string|nil err
M.check_regex = native.check_regex

--- Compiles a list of rule tables (validated by M.RULE) into a C program.
---@return cdata|nil program, string|nil err
M.compile = native.compile

--- Splits rules into runs of C rules and Lua functions; returns the pipeline
--- { { program = cdata } | { fn = function } ... } or nil, err.
function M.pipeline(rules)
  local segs, run, base = {}, {}, 0
  local function flush()
    if #run > 0 then
      local p, err = M.compile(run)
      if not p then
        -- renumber "rule N" to the position in the whole list
        return nil, (err:gsub("^rule (%d+)", function(k)
          return "rule " .. (tonumber(k) + base)
        end))
      end
      segs[#segs + 1] = { program = p }
      run = {}
    end
    return true
  end
  for i, r in ipairs(rules) do
    if type(r) == "function" then
      local ok, err = flush()
      if not ok then
        return nil, err
      end
      segs[#segs + 1] = { fn = r }
      base = i
    else
      run[#run + 1] = r
    end
  end
  local ok, err = flush()
  if not ok then
    return nil, err
  end
  return segs
end

--- A component validate() for the `rule` argument: the rules must compile.
function M.validate_rule_arg(args)
  local _, err = M.pipeline(args.rule)
  return err and ("rule: " .. err) or nil
end

--- True when the pipeline has only C rules (one program).
function M.is_native(segs)
  return #segs <= 1 and (segs[1] == nil or segs[1].program ~= nil)
end

--- Applies a C program to a label table; returns the new table or nil (dropped).
M.apply_program = native.apply

--- Runs a pipeline on a label table: the result table, or nil when dropped.
function M.apply(segs, labels)
  for _, seg in ipairs(segs) do
    if seg.program then
      labels = M.apply_program(seg.program, labels)
    else
      local copy = {}
      for k, v in pairs(labels) do
        copy[k] = v
      end
      labels = budget.call(seg.fn, copy) -- user code: bounded in time
      if labels ~= nil and type(labels) ~= "table" then
        error("relabel function must return a table of labels or nil, got " .. type(labels), 0)
      end
    end
    if labels == nil or next(labels) == nil then
      return nil
    end
  end
  -- empty values delete labels, as Prometheus
  for k, v in pairs(labels) do
    if v == "" then
      labels[k] = nil
    end
  end
  return next(labels) ~= nil and labels or nil
end

local sort, concat = table.sort, table.concat

--- Encodes a label table as the runtime's label-set bytes (sorted). On the miss path of Lua
--- rules: no closure and no require per call, so the JIT compiles it (tests/lua/jit_spec.lua).
function M.encode(labels)
  local names, n = {}, 0
  for k in pairs(labels) do
    if type(k) ~= "string" then -- a Lua rule's odd key: sorted as text, as before
      names, n = nil, 0
      break
    end
    n = n + 1
    names[n] = k
  end
  if names then
    sort(names)
  else
    names = require("moonwatch.schema").sorted_keys(labels)
    n = #names
  end
  local parts = {}
  for i = 1, n do
    local k = names[i]
    parts[i] = tostring(k) .. "\255" .. tostring(labels[k]) .. "\255"
  end
  return concat(parts)
end

return M
