"""Runs Helm (the real Helm v4 SDK bundled by the PyPI package helm-python-sdk) for the chart
tests in e2e/tests/chart.rs, which do the asserting.

Reads one JSON request on stdin: {"chart": DIR, "ops": [OP, ...]} where OP is one of
  {"op": "lint", "values": {...}}
  {"op": "render", "values": {...}, "name": RELEASE, "namespace": NS}
  {"op": "validate", "values": {...}}
  {"op": "crds"}
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
