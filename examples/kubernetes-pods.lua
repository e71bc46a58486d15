-- Scrapes the pods of a Kubernetes cluster that ask for it, as Prometheus's well-known
-- recipe does: discovery.kubernetes lists and watches the pods (in-cluster service account,
-- or KUBECONFIG's file when set), discovery.relabel keeps the containers annotated
-- prometheus.io/scrape=true, takes prometheus.io/port and prometheus.io/path, and turns the
-- __meta_kubernetes_* labels into namespace/pod/container; targets from file_sd files
-- (discovery.file) are scraped too. Samples go to stdout (prometheus.echo).
local kubeconfig = os.getenv("KUBECONFIG")

discovery.kubernetes "pods" {
  role            = "pod",
  kubeconfig_file = kubeconfig,
}

discovery.relabel "pods" {
  targets = discovery.kubernetes.pods.targets,
  rule = {
    { source_labels = { "__meta_kubernetes_pod_annotation_prometheus_io_scrape" }, regex = "true", action = "keep" },
    { source_labels = { "__meta_kubernetes_pod_phase" }, regex = "Succeeded|Failed", action = "drop" },
    { source_labels = { "__meta_kubernetes_pod_annotation_prometheus_io_path" }, regex = "(.+)",
      target_label = "__metrics_path__" },
    { source_labels = { "__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port" },
      regex = "([^:]+)(?::\\d+)?;(\\d+)", replacement = "$1:$2", target_label = "__address__" },
    { source_labels = { "__meta_kubernetes_namespace" }, target_label = "namespace" },
    { source_labels = { "__meta_kubernetes_pod_name" }, target_label = "pod" },
    { source_labels = { "__meta_kubernetes_pod_container_name" }, target_label = "container" },
  },
}

discovery.file "static" {
  files = { "/etc/moonwatch/targets/*.json", "/etc/moonwatch/targets/*.yaml" },
}

prometheus.scrape "pods" {
  targets    = concat(discovery.relabel.pods.output, discovery.file.static.targets),
  forward_to = { prometheus.echo.out.receiver },
}

prometheus.echo "out" {}
