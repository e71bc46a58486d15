--- The targets of each role of discovery.kubernetes: Kubernetes objects (decoded JSON, as the
--- API serves them) into target groups with Prometheus's __meta_kubernetes_* labels, as
--- Prometheus's discovery/kubernetes/{pod,node,service,endpoints,endpointslice,ingress}.go
--- build them (without attach_metadata's node and namespace labels).
local cjson = require("cjson")

local M = {}

local null = cjson.null
local P = "__meta_kubernetes_"

local function val(v)
  if v == nil or v == null then
    return nil
  end
  return v
end

-- A string field as Go would print it ("" when absent; integers without a fraction).
local function str(v)
  v = val(v)
  if v == nil then
    return ""
  end
  if type(v) == "number" then
    return string.format("%d", v)
  end
  if type(v) == "boolean" then
    return tostring(v)
  end
  return tostring(v)
end

local function list(v)
  v = val(v)
  return type(v) == "table" and v or {}
end

local function map(v)
  v = val(v)
  return type(v) == "table" and v or {}
end

-- strutil.SanitizeLabelName: every character (a UTF-8 sequence counts as one) that is not
-- [a-zA-Z0-9_] becomes "_".
local function sanitize(name)
  return (name:gsub("[\192-\247][\128-\191]*", "_"):gsub("[^%w_]", "_"))
end
M.sanitize = sanitize

-- net.JoinHostPort.
local function join_host_port(host, port)
  if host:find(":", 1, true) then
    return "[" .. host .. "]:" .. port
  end
  return host .. ":" .. port
end

local function ns_key(ns, name)
  return str(ns) .. "/" .. str(name)
end
M.key = ns_key

local function add_annotations_and_labels(ls, meta, resource)
  for k, v in pairs(map(meta.labels)) do
    local ln = sanitize(k)
    ls[P .. resource .. "_label_" .. ln] = str(v)
    ls[P .. resource .. "_labelpresent_" .. ln] = "true"
  end
  for k, v in pairs(map(meta.annotations)) do
    local ln = sanitize(k)
    ls[P .. resource .. "_annotation_" .. ln] = str(v)
    ls[P .. resource .. "_annotationpresent_" .. ln] = "true"
  end
end

local function add_object_meta(ls, meta, role)
  ls[P .. role .. "_name"] = str(meta.name)
  add_annotations_and_labels(ls, meta, role)
end

local function merge(a, b)
  local out = {}
  for k, v in pairs(a) do
    out[k] = v
  end
  for k, v in pairs(b) do
    out[k] = v
  end
  return out
end

local function controller_of(meta)
  for _, ref in ipairs(list(meta.ownerReferences)) do
    if val(ref.controller) == true then
      return ref
    end
  end
end

-- The pod labels every role that resolves pods shares (podLabels).
local function pod_labels(pod)
  local meta, spec, status = map(pod.metadata), map(pod.spec), map(pod.status)
  local ready = "unknown"
  for _, c in ipairs(list(status.conditions)) do
    if str(c.type) == "Ready" then
      ready = str(c.status):lower()
      break
    end
  end
  local ls = {
    [P .. "pod_ip"] = str(status.podIP),
    [P .. "pod_ready"] = ready,
    [P .. "pod_phase"] = str(status.phase),
    [P .. "pod_node_name"] = str(spec.nodeName),
    [P .. "pod_host_ip"] = str(status.hostIP),
    [P .. "pod_uid"] = str(meta.uid),
  }
  add_object_meta(ls, meta, "pod")
  local ref = controller_of(meta)
  if ref then
    if str(ref.kind) ~= "" then
      ls[P .. "pod_controller_kind"] = str(ref.kind)
    end
    if str(ref.name) ~= "" then
      ls[P .. "pod_controller_name"] = str(ref.name)
    end
  end
  return ls
end

-- Containers, then init containers: { c = container, init = bool }.
local function containers(pod)
  local spec, out = map(pod.spec), {}
  for _, c in ipairs(list(spec.containers)) do
    out[#out + 1] = { c = c, init = false }
  end
  for _, c in ipairs(list(spec.initContainers)) do
    out[#out + 1] = { c = c, init = true }
  end
  return out
end

--- role pod: one group per pod, a target per container port (or per container without ports).
function M.pod(pod)
  local status = map(pod.status)
  local ip = str(status.podIP)
  local tg = { source = "pod/" .. ns_key(map(pod.metadata).namespace, map(pod.metadata).name), targets = {} }
  if ip == "" then
    return tg
  end
  tg.labels = pod_labels(pod)
  tg.labels[P .. "namespace"] = str(map(pod.metadata).namespace)
  for _, e in ipairs(containers(pod)) do
    local c = e.c
    local cid = ""
    for _, cs in ipairs(list(e.init and status.initContainerStatuses or status.containerStatuses)) do
      if str(cs.name) == str(c.name) then
        cid = str(cs.containerID)
        break
      end
    end
    local ports = list(c.ports)
    if #ports == 0 then
      tg.targets[#tg.targets + 1] = {
        __address__ = ip,
        [P .. "pod_container_name"] = str(c.name),
        [P .. "pod_container_id"] = cid,
        [P .. "pod_container_image"] = str(c.image),
        [P .. "pod_container_init"] = tostring(e.init),
      }
    end
    for _, port in ipairs(ports) do
      local n = str(port.containerPort)
      tg.targets[#tg.targets + 1] = {
        __address__ = join_host_port(ip, n),
        [P .. "pod_container_name"] = str(c.name),
        [P .. "pod_container_id"] = cid,
        [P .. "pod_container_image"] = str(c.image),
        [P .. "pod_container_port_number"] = n,
        [P .. "pod_container_port_name"] = str(port.name),
        [P .. "pod_container_port_protocol"] = str(port.protocol),
        [P .. "pod_container_init"] = tostring(e.init),
      }
    end
  end
  return tg
end

local ADDRESS_ORDER = { "InternalIP", "InternalDNS", "ExternalIP", "ExternalDNS", "LegacyHostIP", "Hostname" }

--- role node: one target per node, on the kubelet's port of its preferred address.
function M.node(node)
  local meta, spec, status = map(node.metadata), map(node.spec), map(node.status)
  local tg = { source = "node/" .. str(meta.name), targets = {} }
  local ls = { [P .. "node_provider_id"] = str(spec.providerID) }
  for _, c in ipairs(list(status.conditions)) do
    ls[P .. "node_condition_" .. sanitize(str(c.type):lower())] = str(c.status):lower()
  end
  add_object_meta(ls, meta, "node")
  tg.labels = ls
  local by_type = {}
  for _, a in ipairs(list(status.addresses)) do
    local ty = str(a.type)
    by_type[ty] = by_type[ty] or str(a.address)
  end
  local addr
  for _, ty in ipairs(ADDRESS_ORDER) do
    if by_type[ty] then
      addr = by_type[ty]
      break
    end
  end
  if not addr then
    return tg, "No node address found: host address unknown"
  end
  local port = str(map(map(status.daemonEndpoints).kubeletEndpoint).Port)
  local t = { __address__ = join_host_port(addr, port == "" and "0" or port), instance = str(meta.name) }
  for ty, a in pairs(by_type) do
    t[sanitize(P .. "node_address_" .. ty)] = a
  end
  tg.targets[1] = t
  return tg
end

local function service_labels(svc)
  local meta = map(svc.metadata)
  local ls = { [P .. "namespace"] = str(meta.namespace) }
  add_object_meta(ls, meta, "service")
  return ls
end

local function load_balancer_ips(svc)
  local ips = {}
  for _, ing in ipairs(list(map(map(svc.status).loadBalancer).ingress)) do
    if str(ing.ip) ~= "" then
      ips[#ips + 1] = str(ing.ip)
    end
  end
  if #ips > 0 then
    return table.concat(ips, ",")
  end
  return str(map(svc.spec).loadBalancerIP)
end

--- role service: a target per service port, on <name>.<namespace>.svc:<port>.
function M.service(svc)
  local meta, spec = map(svc.metadata), map(svc.spec)
  local tg = { source = "svc/" .. ns_key(meta.namespace, meta.name), targets = {}, labels = service_labels(svc) }
  local ty = str(spec.type)
  for _, port in ipairs(list(spec.ports)) do
    local n = str(port.port)
    local t = {
      __address__ = join_host_port(str(meta.name) .. "." .. str(meta.namespace) .. ".svc", n),
      [P .. "service_port_name"] = str(port.name),
      [P .. "service_port_number"] = n,
      [P .. "service_port_protocol"] = str(port.protocol),
      [P .. "service_type"] = ty,
    }
    if ty == "ExternalName" then
      t[P .. "service_external_name"] = str(spec.externalName)
    else
      t[P .. "service_cluster_ip"] = str(spec.clusterIP)
    end
    if ty == "LoadBalancer" then
      t[P .. "service_loadbalancer_ip"] = load_balancer_ips(svc)
    end
    tg.targets[#tg.targets + 1] = t
  end
  return tg
end

-- The targets of a pod's container ports that no endpoint port covered (both endpoint roles).
local function uncovered_pod_ports(tg, seen, order)
  for _, key in ipairs(order) do
    local pe = seen[key]
    local ip = str(map(pe.pod.status).podIP)
    if ip ~= "" then
      for _, e in ipairs(containers(pe.pod)) do
        for _, cport in ipairs(list(e.c.ports)) do
          local n = str(cport.containerPort)
          if not pe.ports[n] then
            tg.targets[#tg.targets + 1] = merge({
              __address__ = join_host_port(ip, n),
              [P .. "pod_container_name"] = str(e.c.name),
              [P .. "pod_container_image"] = str(e.c.image),
              [P .. "pod_container_port_name"] = str(cport.name),
              [P .. "pod_container_port_number"] = n,
              [P .. "pod_container_port_protocol"] = str(cport.protocol),
              [P .. "pod_container_init"] = tostring(e.init),
            }, pod_labels(pe.pod))
          end
        end
      end
    end
  end
end

-- The pod an address's targetRef names, from the pods store.
local function resolve_pod(ref, pods)
  ref = val(ref)
  if not ref or str(ref.kind) ~= "Pod" then
    return nil
  end
  return pods[ns_key(ref.namespace, ref.name)]
end

-- The pod an endpoint's targetRef names, for its target: the pod, its entry in seen (new ones
-- also appended to order, for uncovered_pod_ports) and target with the pod's labels; nil when
-- ref names no known pod (target is then added to tg as it is).
local function with_pod(tg, target, ref, stores, seen, order)
  local pod = resolve_pod(ref, stores.pods)
  if not pod then
    tg.targets[#tg.targets + 1] = target
    return nil
  end
  local key = ns_key(map(pod.metadata).namespace, map(pod.metadata).name)
  local pe = seen[key]
  if not pe then
    pe = { pod = pod, ports = {} }
    seen[key] = pe
    order[#order + 1] = key
  end
  return pod, pe, merge(target, pod_labels(pod))
end

-- The matching container port's labels on target (the first container port equal to port).
local function container_port_labels(target, pod, port, protocol_from_cport)
  for _, e in ipairs(containers(pod)) do
    for _, cport in ipairs(list(e.c.ports)) do
      if str(cport.containerPort) == port then
        target[P .. "pod_container_name"] = str(e.c.name)
        target[P .. "pod_container_image"] = str(e.c.image)
        target[P .. "pod_container_port_name"] = str(cport.name)
        target[P .. "pod_container_port_number"] = port
        target[P .. "pod_container_port_protocol"] = protocol_from_cport and str(cport.protocol) or nil
        target[P .. "pod_container_init"] = tostring(e.init)
        return
      end
    end
  end
end

--- role endpoints: a target per address and port of each subset, with the service's and the
--- pods' labels; the pods' other container ports as targets too.
function M.endpoints(eps, stores)
  local meta = map(eps.metadata)
  local tg = { source = "endpoints/" .. ns_key(meta.namespace, meta.name), targets = {} }
  tg.labels = { [P .. "namespace"] = str(meta.namespace) }
  local svc = stores.services[ns_key(meta.namespace, meta.name)]
  if svc then
    tg.labels = merge(tg.labels, service_labels(svc))
  end
  add_object_meta(tg.labels, meta, "endpoints")
  local seen, order = {}, {}
  local function add(addr, port, ready)
    local n = str(port.port)
    local target = {
      __address__ = join_host_port(str(addr.ip), n),
      [P .. "endpoint_port_name"] = str(port.name),
      [P .. "endpoint_port_protocol"] = str(port.protocol),
      [P .. "endpoint_ready"] = ready,
    }
    local ref = val(addr.targetRef)
    if ref then
      target[P .. "endpoint_address_target_kind"] = str(ref.kind)
      target[P .. "endpoint_address_target_name"] = str(ref.name)
    end
    if val(addr.nodeName) then
      target[P .. "endpoint_node_name"] = str(addr.nodeName)
    end
    if str(addr.hostname) ~= "" then
      target[P .. "endpoint_hostname"] = str(addr.hostname)
    end
    local pod, pe
    pod, pe, target = with_pod(tg, target, ref, stores, seen, order)
    if not pod then
      return
    end
    container_port_labels(target, pod, n, false)
    if target[P .. "pod_container_port_number"] then
      target[P .. "pod_container_port_protocol"] = str(port.protocol)
    end
    pe.ports[n] = true
    tg.targets[#tg.targets + 1] = target
  end
  for _, ss in ipairs(list(eps.subsets)) do
    for _, port in ipairs(list(ss.ports)) do
      for _, addr in ipairs(list(ss.addresses)) do
        add(addr, port, "true")
      end
      for _, addr in ipairs(list(ss.notReadyAddresses)) do
        add(addr, port, "false")
      end
    end
  end
  uncovered_pod_ports(tg, seen, order)
  return tg
end

local function non_primary_ip_family(svc, eps)
  if not svc then
    return false
  end
  local spec = map(svc.spec)
  local policy = str(spec.ipFamilyPolicy)
  if policy ~= "PreferDualStack" and policy ~= "RequireDualStack" then
    return false
  end
  local fams = list(spec.ipFamilies)
  if #fams == 0 then
    return false
  end
  return str(eps.addressType) ~= str(fams[1])
end

--- role endpointslice: a target per endpoint address and port, with the service's (from the
--- kubernetes.io/service-name label) and the pods' labels; the pods' other ports too.
function M.endpointslice(eps, stores)
  local meta = map(eps.metadata)
  local tg = { source = "endpointslice/" .. ns_key(meta.namespace, meta.name), targets = {} }
  tg.labels = { [P .. "namespace"] = str(meta.namespace), [P .. "endpointslice_address_type"] = str(eps.addressType) }
  add_object_meta(tg.labels, meta, "endpointslice")
  local svc
  local svc_name = val(map(meta.labels)["kubernetes.io/service-name"])
  if svc_name then
    svc = stores.services[ns_key(meta.namespace, svc_name)]
    if svc then
      tg.labels = merge(tg.labels, service_labels(svc))
    end
  end
  if non_primary_ip_family(svc, eps) then
    return tg
  end
  local seen, order = {}, {}
  local function add(addr, ep, port)
    local a = str(addr)
    local pnum = val(port.port)
    if pnum then
      a = join_host_port(a, str(pnum))
    end
    local target = { __address__ = a }
    if val(port.name) then
      target[P .. "endpointslice_port_name"] = str(port.name)
    end
    if val(port.protocol) then
      target[P .. "endpointslice_port_protocol"] = str(port.protocol)
    end
    if pnum then
      target[P .. "endpointslice_port"] = str(pnum)
    end
    if val(port.appProtocol) then
      target[P .. "endpointslice_port_app_protocol"] = str(port.appProtocol)
    end
    local cond = map(ep.conditions)
    for _, c in ipairs({ "ready", "serving", "terminating" }) do
      if val(cond[c]) ~= nil then
        target[P .. "endpointslice_endpoint_conditions_" .. c] = tostring(cond[c])
      end
    end
    if val(ep.hostname) then
      target[P .. "endpointslice_endpoint_hostname"] = str(ep.hostname)
    end
    local ref = val(ep.targetRef)
    if ref then
      target[P .. "endpointslice_address_target_kind"] = str(ref.kind)
      target[P .. "endpointslice_address_target_name"] = str(ref.name)
    end
    if val(ep.nodeName) then
      target[P .. "endpointslice_endpoint_node_name"] = str(ep.nodeName)
    end
    if val(ep.zone) then
      target[P .. "endpointslice_endpoint_zone"] = str(ep.zone)
    end
    for k, v in pairs(map(ep.deprecatedTopology)) do
      local ln = sanitize(k)
      target[P .. "endpointslice_endpoint_topology_" .. ln] = str(v)
      target[P .. "endpointslice_endpoint_topology_present_" .. ln] = "true"
    end
    local pod, pe
    pod, pe, target = with_pod(tg, target, ref, stores, seen, order)
    if not pod then
      return
    end
    if pnum then
      container_port_labels(target, pod, str(pnum), true)
      pe.ports[str(pnum)] = true
    end
    tg.targets[#tg.targets + 1] = target
  end
  for _, ep in ipairs(list(eps.endpoints)) do
    for _, port in ipairs(list(eps.ports)) do
      for _, addr in ipairs(list(ep.addresses)) do
        add(addr, ep, port)
      end
    end
  end
  uncovered_pod_ports(tg, seen, order)
  return tg
end

-- matchesHostnamePattern: equal, or a "*." wildcard of the same depth.
local function matches_host(pattern, host)
  if pattern == host then
    return true
  end
  local pp, hp = {}, {}
  for part in (pattern .. "."):gmatch("([^.]*)%.") do
    pp[#pp + 1] = part
  end
  for part in (host .. "."):gmatch("([^.]*)%.") do
    hp[#hp + 1] = part
  end
  if pp[1] ~= "*" or #pp ~= #hp then
    return false
  end
  for i = 2, #pp do
    if pp[i] ~= hp[i] then
      return false
    end
  end
  return true
end

--- role ingress: a target per rule host and path, with the scheme its TLS hosts give.
function M.ingress(ing)
  local meta, spec = map(ing.metadata), map(ing.spec)
  local tg = { source = "ingress/" .. ns_key(meta.namespace, meta.name), targets = {} }
  local ls = { [P .. "namespace"] = str(meta.namespace) }
  if val(spec.ingressClassName) then
    ls[P .. "ingress_class_name"] = str(spec.ingressClassName)
  end
  add_object_meta(ls, meta, "ingress")
  tg.labels = ls
  local tls_hosts = {}
  for _, t in ipairs(list(spec.tls)) do
    for _, h in ipairs(list(t.hosts)) do
      tls_hosts[#tls_hosts + 1] = str(h)
    end
  end
  for _, rule in ipairs(list(spec.rules)) do
    local host = str(rule.host)
    local scheme = "http"
    for _, pattern in ipairs(tls_hosts) do
      if matches_host(pattern, host) then
        scheme = "https"
        break
      end
    end
    local paths
    local http = val(rule.http)
    if not http then
      paths = { "/" }
    else
      paths = {}
      for _, p in ipairs(list(http.paths)) do
        local path = str(p.path)
        paths[#paths + 1] = path == "" and "/" or path
      end
    end
    for _, path in ipairs(paths) do
      tg.targets[#tg.targets + 1] = {
        __address__ = host,
        [P .. "ingress_scheme"] = scheme,
        [P .. "ingress_host"] = host,
        [P .. "ingress_path"] = path,
      }
    end
  end
  return tg
end

--- The targets of groups (group labels under each target's own).
function M.flatten(groups, out)
  out = out or {}
  for _, tg in ipairs(groups) do
    for _, t in ipairs(tg.targets) do
      out[#out + 1] = merge(tg.labels or {}, t)
    end
  end
  return out
end

return M
