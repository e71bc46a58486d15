-- A moonwatch on every node (daemonset.yaml): the node's metrics and processes, its journal
-- and its pods' logs. The host's /proc, /sys and / are mounted read-only under /host, with
-- hostPID so that the process exporter sees every process of the node; /var/log/journal and
-- /var/log/pods are mounted read-only at their own paths. Nothing here needs the Kubernetes
-- API: the pod logs' namespace, pod and container come from their paths.
--
-- REMOTE_WRITE_URL and LOKI_URL come from the moonwatch-env ConfigMap (kustomization.yaml);
-- NODE_NAME from the downward API (spec.nodeName).
local node = env("NODE_NAME", constants.hostname)

prometheus.exporter.unix "node" {
  procfs_path = "/host/proc",
  sysfs_path  = "/host/sys",
  rootfs_path = "/host/root",
}

-- every process of the node, grouped by command name (hostPID: true)
prometheus.exporter.process "node" {
  procfs_path = "/host/proc",
  matcher     = { { name = "{{.Comm}}", cmdline = { ".+" } } },
}

-- moonwatch's own metrics
prometheus.exporter.self "moonwatch" {}

-- instance = the node, not the pod (which changes at every roll-out)
discovery.relabel "node" {
  targets = concat(
    prometheus.exporter.unix.node.targets,
    prometheus.exporter.process.node.targets,
    prometheus.exporter.self.moonwatch.targets
  ),
  rule = { { target_label = "instance", replacement = node } },
}

prometheus.scrape "node" {
  targets         = discovery.relabel.node.output,
  forward_to      = { prometheus.remote_write.default.receiver },
  scrape_interval = env("SCRAPE_INTERVAL", "30s"),
  scrape_timeout  = env("SCRAPE_TIMEOUT", "10s"),
}

prometheus.remote_write "default" {
  endpoint = { url = env("REMOTE_WRITE_URL", "http://prometheus.monitoring.svc:9090/api/v1/write") },
}

-- The node's journal (systemd units, the kubelet, the container runtime).
loki.relabel "journal" {
  forward_to = {},
  rule = {
    { source_labels = { "__journal__systemd_unit" }, target_label = "unit" },
    { source_labels = { "__journal_priority_keyword" }, target_label = "level" },
  },
}

loki.source.journal "node" {
  path          = "/var/log/journal",
  max_age       = "12h",
  relabel_rules = loki.relabel.journal.rules,
  labels        = { job = "node/journal", node = node },
  forward_to    = { loki.write.default.receiver },
}

-- The logs of this node's containers, as the kubelet keeps them:
-- /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log, CRI-formatted.
local_.file_match "pods" {
  path_targets = { { __path__ = "/var/log/pods/*/*/*.log", job = "kubernetes/pods", node = node } },
}

loki.source.file "pods" {
  targets    = local_.file_match.pods.targets,
  forward_to = { loki.process.pods.receiver },
}

loki.process "pods" {
  forward_to = { loki.write.default.receiver },
  stage.cri {},
  stage.regex {
    source     = "filename",
    expression = "^/var/log/pods/(?P<namespace>[^_/]+)_(?P<pod>[^_/]+)_[^/]+/(?P<container>[^/]+)/",
  },
  stage.labels { values = { namespace = "", pod = "", container = "" } },
  stage.label_drop { values = { "filename" } },
}

loki.write "default" {
  endpoint        = { url = env("LOKI_URL", "http://loki.monitoring.svc:3100/loki/api/v1/push") },
  external_labels = { cluster = env("CLUSTER", "kubernetes") },
}
