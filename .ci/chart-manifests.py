"""Helpers of .ci/chart-check for rendered chart manifests (run with the tools venv's python).

chart-manifests.py split RENDERED.yaml CORE.yaml CRDS.json
    Core Kubernetes objects go to CORE.yaml (for kubernetes-validate --strict), custom
    resources of the operators the chart targets (Prometheus Operator, KEDA) to CRDS.json
    (for validate-crds.mjs); prints what went where.
chart-manifests.py embedded RENDERED.yaml CHART_DIR
    The PrometheusRule and the dashboard ConfigMap carry files/alerts.yaml and
    files/dashboard.json unchanged (the one copy of each).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

CRD_GROUPS = {"monitoring.coreos.com", "keda.sh"}


def documents(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def name(doc: dict) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def split(rendered: str, core_out: str, crds_out: str) -> int:
    core, crds = [], []
    for doc in documents(rendered):
        group = str(doc.get("apiVersion", "")).rpartition("/")[0]
        (crds if group in CRD_GROUPS else core).append(doc)
    with open(core_out, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(core, f, sort_keys=False)
    with open(crds_out, "w", encoding="utf-8") as f:
        json.dump(crds, f)
    print(
        f"{rendered}: {len(core)} core objects, {len(crds)} custom resources"
        f"{' (' + ', '.join(map(name, crds)) + ')' if crds else ''}"
    )
    return 0 if core else 1


def embedded(rendered: str, chart: str) -> int:
    alerts = yaml.safe_load(Path(chart, "files/alerts.yaml").read_text(encoding="utf-8"))
    dashboard = json.loads(Path(chart, "files/dashboard.json").read_text(encoding="utf-8"))
    found = {"PrometheusRule": False, "dashboard ConfigMap": False}
    problems = []
    for doc in documents(rendered):
        if doc.get("kind") == "PrometheusRule":
            found["PrometheusRule"] = True
            if doc.get("spec") != alerts:
                problems.append(f"{name(doc)}: spec differs from files/alerts.yaml")
        elif doc.get("kind") == "ConfigMap" and "autocall-bridge.json" in doc.get("data", {}):
            found["dashboard ConfigMap"] = True
            if json.loads(doc["data"]["autocall-bridge.json"]) != dashboard:
                problems.append(f"{name(doc)}: differs from files/dashboard.json")
    problems += [f"{rendered}: no {what} rendered" for what, seen in found.items() if not seen]
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{rendered}: the PrometheusRule and the dashboard ConfigMap embed files/ unchanged")
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "split":
        return split(*argv[1:])
    if len(argv) == 3 and argv[0] == "embedded":
        return embedded(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
