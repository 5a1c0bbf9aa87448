"""A different service, run through the local backend by configuration only.

The project it builds is also what the fixture tests of ``test_cluster_fixtures`` run."""

from __future__ import annotations

import textwrap

import pytest

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
  template:
    metadata:
      labels: {app: greeter}
    spec:
      containers:
        - name: web
          image: example/greeter:1.0
          ports: [{name: web, containerPort: 9000}]
          readinessProbe:
            tcpSocket: {port: web}
            periodSeconds: 1
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
env = { GREETER_VERSION = "two" }
"""

TEST = """
from pytest_rollout._wait import wait_for
from pytest_rollout.experiments import wait_serving


def test_release_reaches_every_client(rollout_namespace, rollout_target, rollout_load):
    rollout_namespace.apply(rollout_target.load_manifests())
    rollout_namespace.wait_rolled_out("greeter", timeout=30)
    url = rollout_namespace.route_url("greeter")
    wait_serving(url + "/hello")
    before = rollout_load(url, rate=50, duration=1).wait()
    assert before.by_version() == {"one": 50}, before.summary()
    rollout_namespace.release("greeter", rollout_target.variant("two"))
    rollout_namespace.wait_rolled_out("greeter", timeout=30)
    wait_for(
        lambda: rollout_load(url, rate=50, duration=0.4).wait().by_version() == {"two": 20},
        what="every request to be served by release two",
        timeout=15,
    )
    events = "\\n".join(rollout_namespace.event_lines())
    assert "Scaled up replica set greeter-" in events
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
    result.assert_outcomes(passed=1)
