"""lint-manifests.py: structural checks on the Kubernetes manifests rendered from helm/recd (used by scripts/lint).

usage: lint-manifests.py RENDERED.yaml RECD_JSON_OUT

Checks that every document has apiVersion/kind/metadata.name, that the Deployment's selector matches its pod labels,
that probes and the Service target a named container port, that OPENBLAS_NUM_THREADS=1 is set, that the ConfigMap's
recd.json is a JSON object (written to RECD_JSON_OUT for recd-config to validate), that the HPA and PDB point at the
Deployment's pods, and that every volume mount names a volume.
"""
import json
import sys

import yaml


def fail(msg):
    print("lint-manifests: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
    by_kind = {}
    for d in docs:
        for field in ("apiVersion", "kind", "metadata"):
            if field not in d:
                fail("a document lacks %s: %r" % (field, d))
        if not d["metadata"].get("name"):
            fail("%s without metadata.name" % d["kind"])
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ("Deployment", "Service", "ConfigMap"):
        if len(by_kind.get(kind, [])) != 1:
            fail("expected one %s, got %d" % (kind, len(by_kind.get(kind, []))))

    dep = by_kind["Deployment"][0]
    pod = dep["spec"]["template"]
    selector = dep["spec"]["selector"]["matchLabels"]
    labels = pod["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in selector.items()):
        fail("Deployment selector %r does not match pod labels %r" % (selector, labels))
    containers = pod["spec"]["containers"]
    if len(containers) != 1:
        fail("expected one container")
    c = containers[0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet")
        if not get or get["port"] not in ports or get["path"] != path:
            fail("%s must GET %s on a named container port, got %r" % (probe, path, get))
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    if env.get("OPENBLAS_NUM_THREADS") != "1":
        fail("OPENBLAS_NUM_THREADS=1 is not set")
    if not c.get("resources", {}).get("limits", {}).get("cpu"):
        fail("no CPU limit")
    volumes = {v["name"] for v in pod["spec"].get("volumes", [])}
    for m in c.get("volumeMounts", []):
        if m["name"] not in volumes:
            fail("volumeMount %s names no volume" % m["name"])
    if "--config" not in c.get("args", []):
        fail("recd is not given --config")

    svc = by_kind["Service"][0]
    if svc["spec"]["selector"] != selector:
        fail("Service selector %r differs from the Deployment's %r" % (svc["spec"]["selector"], selector))
    for p in svc["spec"]["ports"]:
        if p["targetPort"] not in ports:
            fail("Service targets port %r, which the container does not name" % p["targetPort"])

    cm = by_kind["ConfigMap"][0]
    cfg = json.loads(cm["data"]["recd.json"])
    if not isinstance(cfg, dict):
        fail("recd.json is not an object")
    port = int(cfg["listen"].rsplit(":", 1)[1])
    if port not in ports.values():
        fail("recd listens on %d but the container port is %r" % (port, ports))
    with open(sys.argv[2], "w") as f:
        json.dump(cfg, f)

    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        if ref["kind"] != "Deployment" or ref["name"] != dep["metadata"]["name"]:
            fail("HPA targets %r" % ref)
        if hpa["spec"]["minReplicas"] > hpa["spec"]["maxReplicas"]:
            fail("HPA minReplicas > maxReplicas")
        if "replicas" in dep["spec"]:
            fail("Deployment sets replicas while an HPA manages it")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if pdb["spec"]["selector"]["matchLabels"] != selector:
            fail("PDB selector differs from the Deployment's")
    for sm in by_kind.get("ServiceMonitor", []):
        if sm["spec"]["endpoints"][0]["port"] not in [p["name"] for p in svc["spec"]["ports"]]:
            fail("ServiceMonitor scrapes a port the Service does not name")
    claims = {d["metadata"]["name"] for d in by_kind.get("PersistentVolumeClaim", [])}
    for v in pod["spec"]["volumes"]:
        claim = v.get("persistentVolumeClaim", {}).get("claimName")
        if claim and claim.startswith(dep["metadata"]["name"]) and claim not in claims:
            fail("volume %s uses claim %s that the chart neither creates nor was given" % (v["name"], claim))
    print("lint-manifests: %d documents ok (%s)" % (len(docs), ", ".join(sorted(by_kind))))


if __name__ == "__main__":
    main()
