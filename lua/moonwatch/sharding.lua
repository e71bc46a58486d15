--- moonwatch.sharding: the pipeline helper hashmod_shard, which splits scrape targets between
--- the replicas of a StatefulSet with no coordination, as Prometheus users do with a hashmod
--- relabel rule (and the Prometheus Operator with its shards): each replica keeps the targets
--- whose hash of the source labels (md5, last 8 bytes big-endian, mod the replica count: the
--- relabel action hashmod, computed in C as Prometheus computes it) is its ordinal.
---
---   discovery.relabel "shard" {
---     targets = discovery.kubernetes.pods.targets,
---     rule    = hashmod_shard {},   -- replicas from MOONWATCH_REPLICAS, ordinal from the pod's name
---   }
---
--- It returns the two rules, so that they can be concatenated with others
--- (`rule = concat(my_rules, hashmod_shard {})`): put them after the rules that set
--- __address__, so that the hash sees the address that is scraped.
local M = {}

--- The ordinal in a StatefulSet pod's name (`moonwatch-2` → 2), or nil.
---@param name string|nil
---@return integer|nil
function M.ordinal_of(name)
  local n = type(name) == "string" and name:match("%-(%d+)$")
  return n and tonumber(n) or nil
end

local function count(v, what, from)
  local n = tonumber(v)
  if not n or n ~= math.floor(n) or n < 0 or n > 2 ^ 31 then
    error(string.format("%s: expected a non-negative integer, got %s %s%s", what, type(v), tostring(v),
      from and (" (from " .. from .. ")") or ""), 0)
  end
  return n
end

--- hashmod_shard { replicas = N, ordinal = I, source_labels = {...}, target_label = "__tmp_hash" }:
--- the relabel rules { hashmod of source_labels into target_label, modulus replicas } and
--- { keep target_label = ordinal }. Every argument is optional:
---   replicas       the number of replicas; default the MOONWATCH_REPLICAS environment variable
---   ordinal        this replica's index, 0 .. replicas-1; default MOONWATCH_ORDINAL, else the
---                  number that ends the host name (HOSTNAME, then the kernel's), `NAME-N` as
---                  a StatefulSet names its pods
---   source_labels  what is hashed, joined with ";" (default { "__address__" })
---   target_label   where the hash goes (default "__tmp_hash", dropped after relabeling as every
---                  `__` label; the Prometheus Operator's name)
---@param args table|nil
---@param getenv function|nil os.getenv (tests)
---@param hostname string|nil the kernel's host name (constants.hostname)
---@return table rules
function M.rules(args, getenv, hostname)
  getenv = getenv or os.getenv
  args = args or {}
  if type(args) ~= "table" then
    error("expected a table of arguments { replicas = ..., ordinal = ... }, got " .. type(args), 0)
  end
  local known = { replicas = true, ordinal = true, source_labels = true, target_label = true }
  for k in pairs(args) do
    if not known[k] then
      error(string.format("unknown argument %q (replicas, ordinal, source_labels, target_label)", tostring(k)), 0)
    end
  end
  local function env(name)
    local v = getenv(name)
    return v ~= "" and v or nil
  end

  local replicas
  if args.replicas ~= nil then
    replicas = count(args.replicas, "replicas")
  elseif env("MOONWATCH_REPLICAS") then
    replicas = count(env("MOONWATCH_REPLICAS"), "replicas", "MOONWATCH_REPLICAS")
  else
    error("replicas: not given, and MOONWATCH_REPLICAS is not set (set it to the StatefulSet's replicas)", 0)
  end
  if replicas < 1 then
    error("replicas: must be at least 1, got " .. replicas, 0)
  end

  local ordinal
  if args.ordinal ~= nil then
    ordinal = count(args.ordinal, "ordinal")
  elseif env("MOONWATCH_ORDINAL") then
    ordinal = count(env("MOONWATCH_ORDINAL"), "ordinal", "MOONWATCH_ORDINAL")
  else
    local host = env("HOSTNAME")
    ordinal = M.ordinal_of(host)
    if not ordinal then
      ordinal = M.ordinal_of(hostname)
      host = host or hostname
    end
    if not ordinal then
      error(string.format("ordinal: not given, MOONWATCH_ORDINAL is not set, and the host name %q does not end "
        .. "in -N as a StatefulSet pod's does", tostring(host)), 0)
    end
  end
  if ordinal >= replicas then
    error(string.format("ordinal %d is not below replicas %d: replica %d would scrape nothing", ordinal, replicas,
      ordinal), 0)
  end

  local source_labels = args.source_labels or { "__address__" }
  if type(source_labels) ~= "table" or #source_labels == 0 then
    error("source_labels: expected a non-empty list of label names", 0)
  end
  local target_label = args.target_label or "__tmp_hash"
  if type(target_label) ~= "string" or not target_label:match("^[%a_][%w_]*$") then
    error("target_label: expected a label name, got " .. tostring(target_label), 0)
  end
  local copy = {}
  for i, l in ipairs(source_labels) do
    copy[i] = l
  end
  return {
    { source_labels = copy, modulus = replicas, target_label = target_label, action = "hashmod" },
    { source_labels = { target_label }, regex = tostring(ordinal), action = "keep" },
  }
end

return M
