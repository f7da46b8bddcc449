"""Runs Helm (the real Helm v4 SDK bundled by the PyPI package helm-python-sdk) for the chart
tests in e2e/tests/chart.rs, which do the asserting.

Reads one JSON request on stdin: {"chart": DIR, "ops": [OP, ...]} where OP is one of
  {"op": "lint", "values": {...}}
  {"op": "render", "values": {...}, "name": RELEASE, "namespace": NS}
  {"op": "validate", "values": {...}}
  {"op": "crds"}
  {"op": "install", "values": {...}, "name": RELEASE, "namespace": NS}   (the cluster in KUBECONFIG)
  {"op": "uninstall", "name": RELEASE, "namespace": NS}
and prints one JSON list with a result per op: {"ok": true, ...} or {"ok": false, "error": MSG}.
"""

import json
import sys

import helm_python as helm


def run(chart_dir, op):
    kind = op["op"]
    values = op.get("values")
    if kind == "lint":
        report = helm.lint(chart_dir, values, strict=True, namespace="deepseek-system")
        return {"ok": True, "report": report}
    if kind == "install":
        with helm.Config(namespace=op["namespace"]) as config:
            release = config.install(
                chart_dir,
                op["name"],
                values,
                namespace=op["namespace"],
                create_namespace=True,
                wait="watcher",
                timeout=op.get("timeout", 180),
            )
            return {"ok": True, "release": release}
    if kind == "uninstall":
        with helm.Config(namespace=op["namespace"]) as config:
            config.uninstall(op["name"], wait="watcher", timeout=op.get("timeout", 180))
            return {"ok": True}
    with helm.Chart.load(chart_dir) as chart:
        if kind == "render":
            files = chart.render(
                values, name=op["name"], namespace=op["namespace"], is_install=True
            )
            return {"ok": True, "files": files}
        if kind == "validate":
            chart.validate_schema(values)
            return {"ok": True}
        if kind == "crds":
            return {"ok": True, "crds": chart.crds}
    raise ValueError(f"unknown op {kind!r}")


def main():
    request = json.load(sys.stdin)
    results = []
    for op in request["ops"]:
        try:
            results.append(run(request["chart"], op))
        except helm.HelmError as e:
            results.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
