"""A different service, run through the local backend by configuration only.

The project it builds is also what the fixture tests of ``test_cluster_fixtures`` run."""

from __future__ import annotations

import textwrap

import pytest

# Runs experiments, whose generator must keep its schedule: alone, not beside other tests.
pytestmark = [pytest.mark.slow, pytest.mark.serial]

APP = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("GREETER_VERSION", "one")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"greeting": "hello", "build": {"release": VERSION}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"""

MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: greeter
spec:
  replicas: 2
  selector:
    matchLabels: {app: greeter}
  # No pod is taken away before its replacement is Ready, and a stopping pod keeps serving
  # until its endpoint removal reached the router: the release drops no request.
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: greeter}
      # Discovered and scraped (its JSON is no metrics page: up == 0, which still shows it).
      annotations: {prometheus.io/scrape: "true"}
    spec:
      containers:
        - name: web
          image: example/greeter:1.0
          ports: [{name: web, containerPort: 9000}]
          readinessProbe:
            tcpSocket: {port: web}
            periodSeconds: 1
          lifecycle:
            preStop:
              sleep: {seconds: 2}
---
apiVersion: v1
kind: Service
metadata:
  name: greeter
spec:
  selector: {app: greeter}
  ports: [{port: 80, targetPort: web}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: greeter
spec:
  parentRefs: [{name: gateway}]
  rules:
    - backendRefs: [{name: greeter, port: 80}]
"""

CONFIG = """
[tool.pytest-rollout]
manifests = ["deploy/*.yaml"]

[tool.pytest-rollout.images."example/greeter"]
command = ["{python}", "app.py", "{host}", "{port}"]
cwd = "."

[[tool.pytest-rollout.requests]]
method = "GET"
path = "/hello"
weight = 1

[tool.pytest-rollout.version]
json = "build.release"

[tool.pytest-rollout.variants.two]
version = "two"
env = { GREETER_VERSION = "two" }
"""

TEST = """
import pytest
from pytest_rollout import Experiment


@pytest.mark.rollout(name="greeter-release")
def test_release_reaches_every_client(rollout: Experiment) -> None:
    run = rollout.release("two", rate=50, tail=5)
    run.assert_load_held()
    run.assert_no_errors()
    run.assert_completed()
    assert run.stable_versions == {"one"}
    assert any("Scaled up replica set greeter-" in e.message for e in run.events)


def test_the_clusters_prometheus_scrapes_the_pods(rollout, rollout_prometheus) -> None:
    rollout.release("two", rate=20, tail=5)
    namespace = rollout.namespaces[0].name
    up = rollout_prometheus.wait_for_data(f'up{{namespace="{namespace}"}}', timeout=30)
    assert all(sample.labels["pod"].startswith("greeter-") for sample in up), up
"""


def make_greeter_project(pytester: pytest.Pytester, test_source: str = TEST) -> None:
    """A project with its own tiny service, manifests and config, and a test module."""
    pytester.makefile(".py", app=textwrap.dedent(APP))
    pytester.mkdir("deploy")
    (pytester.path / "deploy" / "greeter.yaml").write_text(MANIFESTS)
    pytester.makepyprojecttoml(CONFIG)
    pytester.makepyfile(test_greeter=test_source)


def test_a_foreign_service_runs_by_config_only(pytester: pytest.Pytester) -> None:
    make_greeter_project(pytester)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--rollout-report", "report")
    result.assert_outcomes(passed=2)
    assert (pytester.path / "report" / "greeter-release" / "timeline.json").is_file()
