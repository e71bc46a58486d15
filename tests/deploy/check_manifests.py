#!/usr/bin/python3
"""check_manifests.py DIR: offline checks of the Kubernetes manifests in DIR (a kustomization).

There is no cluster (and no schema validator in Debian 12) here, so this checks what a
cluster would refuse or silently get wrong, by reading the YAML (python3-yaml):
  - kustomization.yaml: every resource and every configMapGenerator file exists; generated
    pipelines are .lua files in DIR (tests/check_examples.sh checks them);
  - every document has apiVersion, kind, metadata.name, and a kind/apiVersion pair we expect;
  - workloads: selector.matchLabels within the pod template's labels; every volumeMount names a
    volume (or a volumeClaimTemplate); every configMap volume and envFrom names a ConfigMap of
    the generator; serviceAccountName names a ServiceAccount; the container runs `run ...
    /etc/moonwatch/<key>` with <key> a key of the ConfigMap mounted at /etc/moonwatch;
    probes and Service targetPorts name a declared container port;
  - a StatefulSet's serviceName is a headless Service; its MOONWATCH_REPLICAS equals
    spec.replicas (hashmod_shard's modulus);
  - RBAC: bindings point to existing roles and service accounts; the ClusterRole lets
    discovery.kubernetes list and watch what each of its roles reads.
Prints one line per problem, `FILE: KIND/NAME: problem`, and exits 1 if there is any.
"""
import os
import sys

import yaml

KNOWN = {
    ("v1", "Namespace"), ("v1", "ServiceAccount"), ("v1", "Service"), ("v1", "ConfigMap"),
    ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"), ("apps/v1", "Deployment"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
}
# discovery.kubernetes's roles and the resources they list and watch (endpoints and
# endpointslice also read services and pods)
DISCOVERY = {
    ("", "pods"), ("", "nodes"), ("", "services"), ("", "endpoints"),
    ("discovery.k8s.io", "endpointslices"), ("networking.k8s.io", "ingresses"),
}

problems = []


def problem(where, msg):
    problems.append(f"{where}: {msg}")


def main(root):
    kpath = os.path.join(root, "kustomization.yaml")
    with open(kpath) as f:
        k = yaml.safe_load(f)
    if k.get("kind") != "Kustomization":
        problem(kpath, "kind is not Kustomization")
    generated = {}  # ConfigMap name -> keys
    for g in k.get("configMapGenerator", []):
        keys = set()
        for spec in g.get("files", []):
            key, _, path = spec.partition("=")
            path = path or key
            key = os.path.basename(key)
            if not os.path.isfile(os.path.join(root, path)):
                problem(kpath, f"configMapGenerator {g['name']}: no file {path}")
            elif key.endswith(".lua") and not path.endswith(".lua"):
                problem(kpath, f"configMapGenerator {g['name']}: {path} is not a .lua file (check_examples.sh)")
            keys.add(key)
        for lit in g.get("literals", []):
            keys.add(lit.partition("=")[0])
        generated[g["name"]] = keys

    docs = []
    for res in k.get("resources", []):
        p = os.path.join(root, res)
        if not os.path.isfile(p):
            problem(kpath, f"no resource file {res}")
            continue
        with open(p) as f:
            for d in yaml.safe_load_all(f):
                if d is not None:
                    docs.append((res, d))

    by_kind = {}
    for res, d in docs:
        kind, api = d.get("kind"), d.get("apiVersion")
        name = (d.get("metadata") or {}).get("name")
        if not kind or not api or not name:
            problem(res, f"a document without apiVersion, kind or metadata.name: {d!r:.80}")
            continue
        if (api, kind) not in KNOWN:
            problem(res, f"{kind}/{name}: unexpected apiVersion {api} for kind {kind}")
        by_kind.setdefault(kind, {})[name] = (res, d)

    def where(res, d):
        return f"{res}: {d['kind']}/{d['metadata']['name']}"

    services = by_kind.get("Service", {})
    accounts = by_kind.get("ServiceAccount", {})
    pods = []  # (labels, ports) of every pod template
    for kind in ("DaemonSet", "StatefulSet", "Deployment"):
        for name, (res, d) in by_kind.get(kind, {}).items():
            w = where(res, d)
            spec = d.get("spec", {})
            tpl = spec.get("template", {})
            labels = tpl.get("metadata", {}).get("labels", {})
            for lk, lv in spec.get("selector", {}).get("matchLabels", {}).items():
                if labels.get(lk) != lv:
                    problem(w, f"selector {lk}={lv} does not match the pod template's labels")
            if not spec.get("selector", {}).get("matchLabels"):
                problem(w, "no selector.matchLabels")
            pspec = tpl.get("spec", {})
            sa = pspec.get("serviceAccountName")
            if sa and sa not in accounts:
                problem(w, f"serviceAccountName {sa}: no such ServiceAccount")
            volumes = {v["name"]: v for v in pspec.get("volumes", [])}
            claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
            for v in volumes.values():
                cm = v.get("configMap", {}).get("name")
                if cm and cm not in generated:
                    problem(w, f"volume {v['name']}: ConfigMap {cm} is not generated by kustomization.yaml")
            ports = set()
            for c in pspec.get("containers", []):
                cw = f"{w}: container {c['name']}"
                cports = {p.get("name") for p in c.get("ports", [])} | {p["containerPort"] for p in c.get("ports", [])}
                ports |= cports
                for probe in ("readinessProbe", "livenessProbe"):
                    port = c.get(probe, {}).get("httpGet", {}).get("port")
                    if port is not None and port not in cports:
                        problem(cw, f"{probe} port {port} is not a container port")
                mounts = {}
                for m in c.get("volumeMounts", []):
                    if m["name"] not in volumes and m["name"] not in claims:
                        problem(cw, f"volumeMount {m['name']}: no such volume or volumeClaimTemplate")
                    mounts[m["mountPath"]] = m["name"]
                for e in c.get("envFrom", []):
                    cm = e.get("configMapRef", {}).get("name")
                    if cm and cm not in generated:
                        problem(cw, f"envFrom ConfigMap {cm} is not generated by kustomization.yaml")
                args = c.get("args", [])
                if args[:1] != ["run"]:
                    problem(cw, f"args do not start with run: {args}")
                else:
                    pipeline = args[-1]
                    vol = volumes.get(mounts.get(os.path.dirname(pipeline), ""), {})
                    cm = vol.get("configMap", {}).get("name")
                    if not cm or os.path.basename(pipeline) not in generated.get(cm, set()):
                        problem(cw, f"the pipeline {pipeline} is not a key of a ConfigMap mounted at its directory")
                if kind == "StatefulSet":
                    env = {e["name"]: e.get("value") for e in c.get("env", [])}
                    if env.get("MOONWATCH_REPLICAS") != str(spec.get("replicas", 1)):
                        problem(cw, f"MOONWATCH_REPLICAS={env.get('MOONWATCH_REPLICAS')} is not spec.replicas "
                                f"({spec.get('replicas', 1)}): hashmod_shard would leave targets out or twice")
            pods.append((labels, ports))
            if kind == "StatefulSet":
                svc = services.get(spec.get("serviceName"))
                if not svc:
                    problem(w, f"serviceName {spec.get('serviceName')}: no such Service")
                elif svc[1].get("spec", {}).get("clusterIP") != "None":
                    problem(w, f"serviceName {spec.get('serviceName')}: the governing Service is not headless")

    for name, (res, d) in services.items():
        w = where(res, d)
        sel = d.get("spec", {}).get("selector", {})
        matched = [p for labels, p in pods if all(labels.get(a) == b for a, b in sel.items())]
        if not matched:
            problem(w, f"selector {sel} matches no pod template")
        for port in d.get("spec", {}).get("ports", []):
            tp = port.get("targetPort", port.get("port"))
            if matched and not any(tp in p for p in matched):
                problem(w, f"targetPort {tp} is not a port of the pods it selects")

    roles = by_kind.get("ClusterRole", {})
    for name, (res, d) in by_kind.get("ClusterRoleBinding", {}).items():
        w = where(res, d)
        ref = d.get("roleRef", {})
        if ref.get("kind") != "ClusterRole" or ref.get("name") not in roles:
            problem(w, f"roleRef {ref.get('kind')}/{ref.get('name')}: no such ClusterRole")
        for s in d.get("subjects", []):
            if s.get("kind") == "ServiceAccount":
                if s.get("name") not in accounts:
                    problem(w, f"subject ServiceAccount {s.get('name')}: no such ServiceAccount")
                if s.get("namespace") != k.get("namespace", s.get("namespace")):
                    problem(w, f"subject {s.get('name')} is in namespace {s.get('namespace')}, "
                            f"the kustomization's is {k.get('namespace')}")
    for name, (res, d) in roles.items():
        allowed = set()
        for r in d.get("rules", []):
            if {"list", "watch"} <= set(r.get("verbs", [])):
                for g in r.get("apiGroups", []):
                    for rs in r.get("resources", []):
                        allowed.add((g, rs))
        for g, rs in sorted(DISCOVERY - allowed):
            problem(where(res, d), f"cannot list and watch {rs}{'.' + g if g else ''} (discovery.kubernetes)")

    for p in problems:
        print(p)
    if not problems:
        print(f"{len(docs)} documents, {len(generated)} generated ConfigMaps: no problem")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
