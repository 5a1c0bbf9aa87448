"""A foreign project: another team's service, manifests and config, to point the plugin at.

Nothing here is the reference service's: its own stack (the standard library's HTTP server),
its own paths (``/`` answers 404; health under ``/health/*``; metrics on ``/internal/metrics``
with its own names), the version in a nested JSON field, and AnalysisTemplates that name the
team's real Prometheus (``http://prometheus.monitoring:9090``), listed in ``[prometheus]``.
"""

from __future__ import annotations

import textwrap

import pytest

APP = r"""
import json, os, random, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RELEASE = os.environ.get("SHOP_RELEASE", "one")
BOOT = float(os.environ.get("SHOP_BOOT_SECONDS", "0"))
FAIL_RATE = float(os.environ.get("SHOP_FAIL_RATE", "0"))
ORDERS_BROKEN = os.environ.get("SHOP_ORDERS_BROKEN", "0") == "1"
LOCK = threading.Lock()
REQUESTS = {}
ORDERS = {"accepted": 0, "rejected": 0}


def count(path, status):
    with LOCK:
        REQUESTS[(path, status)] = REQUESTS.get((path, status), 0) + 1


def exposition():
    lines = ["# TYPE shop_http_requests_total counter"]
    with LOCK:
        for (path, status), n in sorted(REQUESTS.items()):
            lines.append(f'shop_http_requests_total{{path="{path}",status="{status}"}} {n}')
        lines.append("# TYPE shop_orders_total counter")
        for result, n in sorted(ORDERS.items()):
            lines.append(f'shop_orders_total{{result="{result}"}} {n}')
    return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.path.startswith("/api/"):
            count(self.path, status)

    def meta(self):
        return {"meta": {"build": {"release": RELEASE}}}

    def do_GET(self):
        if self.path in ("/health/live", "/health/ready"):
            return self.answer(200, {"ok": True})
        if self.path == "/internal/metrics":
            return self.answer(200, exposition().encode(), "text/plain; version=0.0.4")
        if self.path == "/api/items":
            if random.random() < FAIL_RATE:
                return self.answer(500, {"error": "injected", **self.meta()})
            return self.answer(200, {"items": ["tea", "cake"], **self.meta()})
        return self.answer(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path != "/api/orders":
            return self.answer(404, {"error": "not found"})
        if random.random() < FAIL_RATE:
            return self.answer(500, {"error": "injected", **self.meta()})
        with LOCK:
            ORDERS["rejected" if ORDERS_BROKEN else "accepted"] += 1
        # A broken release still answers 200: only the business metric sees it.
        return self.answer(200, {"accepted": not ORDERS_BROKEN, **self.meta()})

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
server.daemon_threads = True
if BOOT:
    # Booting: the port accepts connections but closes them unanswered, as a real slow start.
    deadline = time.monotonic() + BOOT
    server.socket.settimeout(0.1)
    while time.monotonic() < deadline:
        try:
            conn, _ = server.socket.accept()
            conn.close()
        except socket.timeout:
            pass
    server.socket.settimeout(None)
server.serve_forever()
"""

POD = """
    metadata:
      labels: {app: shop}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "7000"
        prometheus.io/path: /internal/metrics
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: web
          image: example.org/shop/web:2.3
          ports: [{name: web, containerPort: 7000}]
          env:
            - {name: SHOP_RELEASE, value: one}
"""

READY = """
          readinessProbe:
            httpGet: {path: /health/ready, port: web}
            periodSeconds: 1
            failureThreshold: 1
          lifecycle:
            preStop:
              sleep: {seconds: 2}
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 2
  selector:
    matchLabels: {app: shop}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
"""

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: web}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: edge}]
  rules:
    - backendRefs: [{name: shop, port: 80}]
"""

CANARY_NETWORK = """
apiVersion: v1
kind: Service
metadata: {name: shop-stable}
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: web}]
---
apiVersion: v1
kind: Service
metadata: {name: shop-canary}
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: web}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop-route}
spec:
  parentRefs: [{name: edge}]
  rules:
    - backendRefs:
        - {name: shop-stable, port: 80, weight: 100}
        - {name: shop-canary, port: 80, weight: 0}
"""

ANALYSIS = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: shop-health}
spec:
  args:
    - name: ns
    - name: hash
  metrics:
    - name: error-ratio
      interval: 3s
      count: 3
      failureLimit: 0
      inconclusiveLimit: 2
      successCondition: len(result) > 0 && !isNaN(result[0]) && result[0] <= 0.05
      failureCondition: len(result) > 0 && result[0] > 0.05
      provider:
        prometheus:
          address: http://prometheus.monitoring:9090
          query: |
            (sum(rate(shop_http_requests_total{namespace="{{args.ns}}",
                rollouts_pod_template_hash="{{args.hash}}", status=~"5.."}[15s])) or vector(0))
            / sum(rate(shop_http_requests_total{namespace="{{args.ns}}",
                rollouts_pod_template_hash="{{args.hash}}"}[15s]))
    - name: order-success
      interval: 3s
      count: 3
      failureLimit: 0
      inconclusiveLimit: 2
      successCondition: len(result) > 0 && !isNaN(result[0]) && result[0] >= 0.9
      failureCondition: len(result) > 0 && result[0] < 0.9
      provider:
        prometheus:
          address: http://prometheus.monitoring:9090
          query: |
            (sum(rate(shop_orders_total{namespace="{{args.ns}}",
                rollouts_pod_template_hash="{{args.hash}}", result="accepted"}[15s])) or vector(0))
            / sum(rate(shop_orders_total{namespace="{{args.ns}}",
                rollouts_pod_template_hash="{{args.hash}}"}[15s]))
"""

ROLLOUT = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: shop}
spec:
  replicas: 2
  selector:
    matchLabels: {app: shop}
  strategy:
    canary:
      stableService: shop-stable
      canaryService: shop-canary
      abortScaleDownDelaySeconds: 5
      trafficRouting:
        plugins:
          argoproj-labs/gatewayAPI: {httpRoute: shop-route}
      steps:
        - setWeight: 10
        - pause: {duration: 8s}
        - analysis:
            templates: [{templateName: shop-health}]
            args:
              - name: ns
                valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
              - name: hash
                valueFrom: {podTemplateHashValue: Latest}
        - setWeight: 50
        - pause: {duration: 2s}
  template:
"""

CONFIG = """
[tool.pytest-rollout.manifests]
plain = ["deploy/plain/service.yaml", "deploy/plain/probe.yaml"]
plain-no-probe = ["deploy/plain/service.yaml", "deploy/plain/no-probe.yaml"]
canary = ["deploy/canary"]

[tool.pytest-rollout.images."example.org/shop/web"]
command = ["{python}", "app.py", "{host}", "{port}"]

[[tool.pytest-rollout.requests]]
name = "browse"
path = "/api/items"
weight = 3

[[tool.pytest-rollout.requests]]
name = "order"
method = "POST"
path = "/api/orders"
json = { item = "tea" }
weight = 1

[tool.pytest-rollout.version]
json = "meta.build.release"

[tool.pytest-rollout.prometheus]
addresses = ["http://prometheus.monitoring:9090"]

[tool.pytest-rollout.variants.two]
version = "two"
env = { SHOP_RELEASE = "two" }

[tool.pytest-rollout.variants.two-slow-boot]
version = "two"
env = { SHOP_RELEASE = "two", SHOP_BOOT_SECONDS = "2" }

[tool.pytest-rollout.variants.broken]
version = "two-broken"
env = { SHOP_RELEASE = "two-broken", SHOP_FAIL_RATE = "0.5" }

[tool.pytest-rollout.variants.orders-broken]
version = "two-orders"
env = { SHOP_RELEASE = "two-orders", SHOP_ORDERS_BROKEN = "1" }
"""

EXPERIMENTS = """
[tool.pytest-rollout.experiments.probe]
kind = "readiness-probe"
with_probe = "plain"
without_probe = "plain-no-probe"
variant = "two-slow-boot"
rate = 100
tail = 4

[tool.pytest-rollout.experiments.contained]
kind = "canary-containment"
manifests = "canary"
variant = "broken"
metric = "error-ratio"
rate = 100
tail = 7

[tool.pytest-rollout.experiments.orders-gate]
kind = "metric-gate"
manifests = "canary"
variant = "orders-broken"
metric = "order-success"
must_pass = ["error-ratio"]
rate = 100
tail = 7

[tool.pytest-rollout.experiments.ships]
kind = "good-release"
manifests = "canary"
variant = "two"
rate = 100
tail = 3
"""


def make_shop_project(pytester: pytest.Pytester, *, experiments: str = EXPERIMENTS) -> None:
    """Write the shop's app, manifests and ``pyproject.toml`` into ``pytester.path``."""
    pytester.makefile(".py", app=textwrap.dedent(APP))
    for directory in ("deploy/plain", "deploy/canary"):
        (pytester.path / directory).mkdir(parents=True)
    plain = pytester.path / "deploy" / "plain"
    (plain / "service.yaml").write_text(SERVICE)
    (plain / "probe.yaml").write_text(DEPLOYMENT + POD + READY)
    (plain / "no-probe.yaml").write_text(DEPLOYMENT + POD)
    canary = pytester.path / "deploy" / "canary"
    (canary / "network.yaml").write_text(CANARY_NETWORK)
    (canary / "analysis.yaml").write_text(ANALYSIS)
    (canary / "rollout.yaml").write_text(ROLLOUT + POD + READY)
    pytester.makepyprojecttoml(CONFIG + experiments)
