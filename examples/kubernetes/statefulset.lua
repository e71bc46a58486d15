-- The cluster's scrapers (statefulset.yaml): the pods that ask to be scraped
-- (prometheus.io/scrape: "true", as Prometheus's example kubernetes configuration reads them),
-- split between the StatefulSet's replicas by hashmod_shard with no coordination: replica N
-- (its pod is moonwatch-scraper-N) keeps the targets whose hash of __address__ modulo
-- MOONWATCH_REPLICAS is N. Keep MOONWATCH_REPLICAS equal to the StatefulSet's replicas.
--
-- Needs discovery.kubernetes and the ClusterRole of rbac.yaml.
discovery.kubernetes "pods" {
  role      = "pod",
  selectors = { { role = "pod", field = "status.phase=Running" } },
}

discovery.relabel "pods" {
  targets = discovery.kubernetes.pods.targets,
  rule = concat({
    { source_labels = { "__meta_kubernetes_pod_annotation_prometheus_io_scrape" }, regex = "true", action = "keep" },
    { source_labels = { "__meta_kubernetes_pod_annotation_prometheus_io_scheme" }, regex = "(https?)",
      target_label = "__scheme__" },
    { source_labels = { "__meta_kubernetes_pod_annotation_prometheus_io_path" }, regex = "(.+)",
      target_label = "__metrics_path__" },
    { source_labels = { "__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port" },
      regex = "(.+?)(?::\\d+)?;(\\d+)", replacement = "$1:$2", target_label = "__address__" },
    { action = "labelmap", regex = "__meta_kubernetes_pod_label_(.+)" },
    { source_labels = { "__meta_kubernetes_namespace" }, target_label = "namespace" },
    { source_labels = { "__meta_kubernetes_pod_name" }, target_label = "pod" },
    { source_labels = { "__meta_kubernetes_pod_container_name" }, target_label = "container" },
  },
  -- last, on the address that is scraped: this replica's share
  hashmod_shard {}),
}

prometheus.scrape "pods" {
  targets    = discovery.relabel.pods.output,
  job_name   = "kubernetes-pods",
  forward_to = { prometheus.remote_write.default.receiver },
}

-- each replica's own metrics (not sharded: every replica watches itself)
prometheus.exporter.self "moonwatch" {}

prometheus.scrape "moonwatch" {
  targets    = prometheus.exporter.self.moonwatch.targets,
  forward_to = { prometheus.remote_write.default.receiver },
}

-- No per-replica label on the samples: a target keeps its series when it moves to another
-- replica (the replica count changed).
prometheus.remote_write "default" {
  endpoint = { url = env("REMOTE_WRITE_URL", "http://prometheus.monitoring.svc:9090/api/v1/write") },
}
