--- moonwatch.targetgroup: Prometheus target groups (`[{"targets": [...], "labels": {...}}]`),
--- the format of file_sd files and of HTTP SD responses, as decoded JSON into targets
--- (label tables with __address__), for discovery.file and discovery.http.
local cjson = require("cjson")
local is_list = require("moonwatch.schema").is_array

local M = {}

local null = cjson.null

-- "at character N" in cjson's messages as "line L, column C" of text.
local function position(text, msg)
  local at = tonumber(msg:match("at character (%d+)"))
  if not at then
    return msg
  end
  local line, col = 1, 1
  for i = 1, math.min(at - 1, #text) do
    if text:byte(i) == 10 then
      line, col = line + 1, 1
    else
      col = col + 1
    end
  end
  return string.format("line %d, column %d: %s", line, col, (msg:gsub(" at character %d+", "")))
end

--- Decodes JSON text; nil, "line L, column C: reason" when it is not JSON.
---@param text string
---@return any|nil value, string|nil err
function M.decode_json(text)
  local ok, v = pcall(cjson.decode, text)
  if not ok then
    return nil, position(text, tostring(v))
  end
  return v
end

--- The targets of a decoded list of target groups: for each group, one label table per
--- target (the group's labels, extra's, and __address__), in order. nil, err naming the
--- group (0-based, as Prometheus's sources) at fault. A group's fields other than targets
--- and labels are refused, as Prometheus refuses them in YAML (UnmarshalStrict) and JSON
--- (Group.UnmarshalJSON: DisallowUnknownFields).
---@param groups any the decoded document
---@param extra table labels added to every group (__meta_filepath, __meta_url)
---@param max_targets integer|nil bound on the targets
---@return table[]|nil targets, string|nil err, integer groups
function M.targets(groups, extra, max_targets)
  if groups == null or groups == nil then
    return {}, nil, 0
  end
  if not is_list(groups) then
    return nil, "expected a list of target groups"
  end
  local out = {}
  for i, g in ipairs(groups) do
    local where = string.format("target group %d: ", i - 1)
    if g == null then
      return nil, where .. "nil target group item found"
    end
    if type(g) ~= "table" or (next(g) ~= nil and is_list(g)) then
      return nil, where .. "expected an object with targets and labels"
    end
    for k in pairs(g) do
      if k ~= "targets" and k ~= "labels" then
        return nil, string.format("%sunknown field %q", where, tostring(k))
      end
    end
    local labels = {}
    if g.labels ~= nil and g.labels ~= null then
      if type(g.labels) ~= "table" or (next(g.labels) ~= nil and is_list(g.labels)) then
        return nil, where .. "labels must be an object"
      end
      for k, v in pairs(g.labels) do
        if type(k) ~= "string" or k == "" then
          return nil, where .. "labels: a label name must be a non-empty string"
        end
        if v == null then
          v = "" -- as Prometheus's LabelSet decodes null (JSON and YAML): an empty value
        elseif type(v) ~= "string" then
          return nil, string.format("%slabels: the value of %q must be a string", where, k)
        end
        labels[k] = v
      end
    end
    for k, v in pairs(extra or {}) do
      labels[k] = v
    end
    local ts = g.targets
    if ts == nil or ts == null then
      ts = {}
    end
    if not is_list(ts) then
      return nil, where .. "targets must be a list of strings"
    end
    for j, addr in ipairs(ts) do
      if addr == null then
        -- as Prometheus's Group decodes a null target (a []string: JSON and YAML leave it ""):
        -- a target without an address, which a scrape drops ("no address"), not a refused file
        addr = ""
      elseif type(addr) ~= "string" then
        return nil, string.format("%stargets[%d] must be a string", where, j - 1)
      end
      if max_targets and #out >= max_targets then
        return nil, string.format("more than %d targets", max_targets)
      end
      local t = {}
      for k, v in pairs(labels) do
        t[k] = v
      end
      t.__address__ = addr
      out[#out + 1] = t
    end
  end
  return out, nil, #groups
end

return M
