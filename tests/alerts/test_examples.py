"""The deployment examples stay true: the Kubernetes project file loads with its notifiers, and the
options both examples pass to `watch` exist."""

from __future__ import annotations

import shlex

import yaml

from civicq_ops.alerts.notifiers import load_notifiers
from civicq_ops.config import load_project
from tests.alerts.conftest import REPO


def test_kubernetes_example_project_loads_with_its_notifiers(tmp_path):
    docs = list(yaml.safe_load_all((REPO / "examples/kubernetes/watch.yaml").read_text()))
    path = tmp_path / "civicq-ops.yaml"
    path.write_text(docs[0]["data"]["civicq-ops.yaml"])
    env = {"CIVICQ_PROD_URL": "postgresql://u@db/civicq", "CIVICQ_STATE_URL": "postgresql://u@db/state",
           "ALERTMANAGER_URL": "http://alertmanager:9093", "WEBHOOK_SECRET": "hmac-key-xyz"}
    project = load_project(path, env=env)
    assert set(load_notifiers(project)) == {"alertmanager", "hook"}
    args = docs[1]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("watch") + 1:] == ["--listen", "0.0.0.0:9187", "--json-logs"]


def test_systemd_example_uses_real_watch_options(cli):
    unit = (REPO / "examples/systemd/civicq-ops-watch.service").read_text().replace("\\\n", " ")
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    options = [a for a in argv[argv.index("watch") + 1:] if a.startswith("--")]
    help_text = cli("watch", "--help").stdout
    assert options and all(o in help_text for o in options), (options, help_text)
