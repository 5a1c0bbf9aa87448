"""AnalysisTemplate model: the supported subset, unsupported fields, Argo's validation wording."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.engine.analysis import (
    AnalysisSpecError,
    AnalysisTemplate,
    ArgumentError,
    DurationError,
    JobRun,
    PrometheusQuery,
    WebRequest,
    parse_go_duration,
    resolve_metrics,
)
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import load_manifest_file, parse_manifests

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "manifests" / "base"

PROMETHEUS = """\
provider:
  prometheus:
    address: http://127.0.0.1:9090
    query: vector(1)
"""


def template(metric: str, *, head: str = "", kind: str = "AnalysisTemplate") -> AnalysisTemplate:
    """A one-metric template; ``metric`` holds the metric's fields after ``name: m``."""
    body = textwrap.indent(textwrap.dedent(metric), "      ")
    text = (
        "apiVersion: argoproj.io/v1alpha1\n"
        f"kind: {kind}\n"
        "metadata:\n"
        "  name: t\n"
        "spec:\n"
        f"{textwrap.indent(textwrap.dedent(head), '  ')}"
        "  metrics:\n"
        "    - name: m\n"
        f"{body}"
    )
    (manifest,) = parse_manifests(text, Path("t.yaml"))
    return AnalysisTemplate.from_manifest(manifest)


def load_error(metric: str, **kwargs: str) -> str:
    with pytest.raises(ConfigError) as info:
        template(metric, **kwargs)
    return str(info.value)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # messages show paths relative to the working directory


# -- the project's templates --------------------------------------------------------------------


def test_the_projects_templates_load_with_their_args_and_metrics() -> None:
    loaded = {}
    for path in sorted(FIXTURES.glob("analysis-*.yaml")):
        (manifest,) = load_manifest_file(path)
        loaded[manifest.name] = AnalysisTemplate.from_manifest(manifest)
    assert sorted(loaded) == ["checkout-success", "error-rate", "latency-p99", "smoke-check"]
    error_rate = loaded["error-rate"]
    assert [(a.name, a.value) for a in error_rate.args] == [
        ("namespace", None),
        ("canary-hash", None),
        ("max-error-rate", "0.05"),
        ("prometheus-address", "http://prometheus.rollout-system.svc.cluster.local:9090"),
    ]
    (metric,) = resolve_metrics(
        error_rate.metrics,
        {a.name: a.value or "x" for a in error_rate.args} | {"namespace": "ns-1"},
    )
    assert isinstance(metric.provider, PrometheusQuery)
    assert metric.provider.timeout == 10
    assert 'namespace="ns-1"' in metric.provider.query
    assert (metric.interval, metric.count, metric.effective_count) == (5.0, 4, 4)
    assert (metric.failure_limit, metric.inconclusive_limit) == (0, 1)
    assert metric.consecutive_error_limit == 4
    assert metric.success_condition.endswith("result[0] <= 0.05")
    (smoke,) = resolve_metrics(loaded["smoke-check"].metrics, {"namespace": "n", "service": "s"})
    assert isinstance(smoke.provider, WebRequest)
    assert smoke.provider.url == "http://s.n.svc.cluster.local/"
    assert smoke.provider.json_path.steps == ("version",)
    assert (smoke.provider.timeout, smoke.consecutive_error_limit) == (5.0, 0)


def test_cluster_template_and_defaults() -> None:
    loaded = template(PROMETHEUS, kind="ClusterAnalysisTemplate")
    assert loaded.ref == "ClusterAnalysisTemplate/t"
    (metric,) = resolve_metrics(loaded.metrics, {})
    assert metric.interval is None
    assert metric.count is None
    assert metric.effective_count == 1
    assert (metric.failure_limit, metric.inconclusive_limit, metric.consecutive_error_limit) == (
        0,
        0,
        4,
    )
    assert isinstance(metric.provider, PrometheusQuery)
    assert metric.provider.timeout == 30


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("", 1),
        ("interval: 5s\n", None),
        ("count: 0\ninterval: 5s\n", None),
        ("count: 0\n", 1),
        ("count: 3\ninterval: 5s\n", 3),
        ('count: "2"\ninterval: 1m\n', 2),
    ],
)
def test_effective_count_follows_argo(fields: str, expected: int | None) -> None:
    (metric,) = resolve_metrics(template(fields + PROMETHEUS).metrics, {})
    assert metric.effective_count == expected


def test_job_metric_keeps_its_container_for_the_launcher() -> None:
    loaded = template(
        """\
        provider:
          job:
            spec:
              backoffLimit: 1
              template:
                spec:
                  restartPolicy: Never
                  containers:
                    - name: smoke
                      image: curlimages/curl:8.5.0
                      command: [curl, -f, "http://{{args.host}}/"]
        """,
        head="args:\n  - name: host\n",
    )
    (metric,) = resolve_metrics(loaded.metrics, {"host": "web.ns"})
    assert isinstance(metric.provider, JobRun)
    assert metric.provider.backoff_limit == 1
    assert metric.provider.container["command"] == ["curl", "-f", "http://web.ns/"]


# -- unsupported fields: named with their file and line ----------------------------------------


@pytest.mark.parametrize(
    ("metric", "head", "line", "field"),
    [
        (
            PROMETHEUS + "consecutiveSuccessLimit: 2\n",
            "",
            12,
            "spec.metrics[0].consecutiveSuccessLimit",
        ),
        ("provider:\n  datadog:\n    query: x\n", "", 9, "spec.metrics[0].provider.datadog"),
        (
            PROMETHEUS + "    insecure: true\n",
            "",
            12,
            "spec.metrics[0].provider.prometheus.insecure",
        ),
        (
            "provider:\n  web:\n    url: http://x/\n    authentication: {}\n",
            "",
            11,
            "spec.metrics[0].provider.web.authentication",
        ),
        (PROMETHEUS, "dryRun:\n  - metricName: m\n", 6, "spec.dryRun"),
        (
            PROMETHEUS,
            "args:\n  - name: a\n    valueFrom:\n      secretKeyRef: {name: s, key: k}\n",
            9,
            "spec.args[0].valueFrom.secretKeyRef",
        ),
        (
            PROMETHEUS,
            "args:\n  - name: a\n    valueFrom:\n      podTemplateHashValue: Stable\n",
            9,
            "spec.args[0].valueFrom.podTemplateHashValue",
        ),
        (
            "provider:\n  job:\n    spec:\n      parallelism: 2\n",
            "",
            11,
            "spec.metrics[0].provider.job.spec.parallelism",
        ),
        (
            "provider:\n  job:\n    spec:\n      template:\n        spec:\n"
            "          containers:\n            - name: a\n              image: b\n"
            "              volumeMounts: []\n",
            "",
            16,
            "spec.metrics[0].provider.job.spec.template.spec.containers[0].volumeMounts",
        ),
    ],
)
def test_fields_outside_the_subset_are_rejected_with_file_and_line(
    metric: str, head: str, line: int, field: str
) -> None:
    message = load_error(metric, head=head)
    assert message.startswith(f"t.yaml:{line}: AnalysisTemplate/t: unsupported: {field} ("), message


def test_unknown_top_level_field_is_rejected() -> None:
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: t\n"
        "spec:\n  metrics: []\nstatus: {}\n"
    )
    (manifest,) = parse_manifests(text, Path("t.yaml"))
    with pytest.raises(ConfigError) as caught:
        AnalysisTemplate.from_manifest(manifest)
    # Named together with the document's other error, each on a line of its own.
    assert str(caught.value).splitlines() == [
        "t.yaml: AnalysisTemplate/t: 1 unsupported field and a further error:",
        "  t.yaml:7: AnalysisTemplate/t: unsupported: status (supported: apiVersion, kind, "
        "metadata, spec)",
        "  t.yaml:6: AnalysisTemplate/t: spec.metrics: no metrics specified",
    ]


def test_every_unsupported_field_of_a_template_is_named_at_once() -> None:
    message = load_error(
        "provider:\n  prometheus:\n    address: http://p/\n    query: q\n    insecure: true\n",
        head="dryRun:\n  - metricName: m\n",
    )
    lines = message.splitlines()
    assert lines[0] == "t.yaml: AnalysisTemplate/t: 2 unsupported fields:"
    assert [line.split(": unsupported: ")[1].split(" (")[0] for line in lines[1:]] == [
        "spec.dryRun",
        "spec.metrics[0].provider.prometheus.insecure",
    ]


@pytest.mark.parametrize(
    ("job", "line", "field", "supported"),
    [
        (
            "metadata:\n      labels: {team: web}\n    spec: {}\n",
            10,
            "spec.metrics[0].provider.job.metadata",
            "spec",
        ),
        (
            "spec:\n      template:\n        metadata:\n          annotations: {a: b}\n",
            12,
            "spec.metrics[0].provider.job.spec.template.metadata",
            "spec",
        ),
        (
            "spec:\n      template:\n        spec:\n          containers:\n"
            "            - name: a\n              image: b\n              workingDir: /app\n",
            16,
            "spec.metrics[0].provider.job.spec.template.spec.containers[0].workingDir",
            "name, image, command, args, env",
        ),
    ],
)
def test_job_metadata_and_working_dir_are_refused_not_dropped(
    job: str, line: int, field: str, supported: str
) -> None:
    # A Job runs here as a process: no Job or pod object to label, and the image's working
    # directory is its [images] cwd.
    message = load_error("provider:\n  job:\n    " + job)
    assert message.startswith(
        f"t.yaml:{line}: AnalysisTemplate/t: unsupported: {field} (supported: {supported})"
    ), message


# -- malformed metrics: Argo's wording ----------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("count: 3\n" + PROMETHEUS, "interval must be specified when count > 1"),
        ("count: 1\nfailureLimit: 2\n" + PROMETHEUS, "count must be >= failureLimit"),
        ("count: 1\ninconclusiveLimit: 3\n" + PROMETHEUS, "count must be >= inconclusiveLimit"),
        (
            'interval: "30"\n' + PROMETHEUS,
            'invalid interval string: time: missing unit in duration "30"',
        ),
        (
            "interval: 1d\n" + PROMETHEUS,
            'invalid interval string: time: unknown unit "d" in duration "1d"',
        ),
        (
            "initialDelay: soon\n" + PROMETHEUS,
            'invalid startDelay string: time: invalid duration "soon"',
        ),
        ("failureLimit: -2\n" + PROMETHEUS, "failureLimit must be >= 0"),
        ("inconclusiveLimit: -1\n" + PROMETHEUS, "inconclusiveLimit must be >= 0"),
        ("consecutiveErrorLimit: -1\n" + PROMETHEUS, "consecutiveErrorLimit must be >= 0"),
        ("provider: {}\n", "no provider specified"),
        (
            PROMETHEUS + "  web:\n    url: http://127.0.0.1/\n",
            "multiple providers specified",
        ),
        (
            "provider:\n  prometheus:\n    address: x\n    query: up\n",
            "prometheus address is not is url format",
        ),
        (
            "provider:\n  prometheus:\n    query: up\n",
            "prometheus address is not configured",
        ),
        (PROMETHEUS + "    timeout: -1\n", "prometheus timeout should not be negative"),
        (
            "provider:\n  web:\n    url: http://127.0.0.1/\n    body: x\n",
            "Body/JSONBody can only be used with POST or PUT WebMetric Method types",
        ),
        (
            "provider:\n  web:\n    url: http://127.0.0.1/\n    method: POST\n    body: x\n"
            "    jsonBody: {a: 1}\n",
            "use either Body or JSONBody; both cannot exists for WebMetric payload",
        ),
        (
            "provider:\n  web:\n    url: http://127.0.0.1/\n    jsonPath: '{$.items[*].x}'\n",
            "spec.metrics[0]: provider.web.jsonPath: jsonPath '{$.items[*].x}' is not supported",
        ),
        (
            "provider:\n  web:\n    url: http://127.0.0.1/\n    method: DELETE\n",
            "provider.web.method: unsupported method 'DELETE' (supported: GET, POST, PUT)",
        ),
        ("successCondition: result[0] <\n" + PROMETHEUS, "successCondition: unexpected token"),
        ("failureCondition: rezult > 1\n" + PROMETHEUS, "failureCondition: unknown name rezult"),
        (
            "interval: 30\n" + PROMETHEUS,
            "interval: expected a string, got a number (write durations",
        ),
        ("count: many\n" + PROMETHEUS, "count: expected an integer, got 'many'"),
        (
            "provider:\n  job:\n    spec:\n      template:\n        spec:\n"
            "          restartPolicy: Always\n          containers:\n"
            "            - {name: a, image: b}\n",
            'restartPolicy: Unsupported value: \'Always\': supported values: "OnFailure", "Never"',
        ),
    ],
)
def test_malformed_metrics_fail_at_load_with_argos_wording(metric: str, message: str) -> None:
    error = load_error(metric)
    assert re.match(r"^t\.yaml:\d+: AnalysisTemplate/t: spec\.metrics\[0\]: ", error), error
    assert message in error


def test_error_points_at_the_offending_line() -> None:
    error = load_error("interval: 5s\ninitialDelay: 1x\n" + PROMETHEUS)
    assert error.startswith("t.yaml:9: "), error


def test_duplicate_metric_names_are_rejected() -> None:
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: t\n"
        "spec:\n  metrics:\n"
        f"    - name: m\n{textwrap.indent(PROMETHEUS, '      ')}"
        f"    - name: m\n{textwrap.indent(PROMETHEUS, '      ')}"
    )
    (manifest,) = parse_manifests(text, Path("t.yaml"))
    with pytest.raises(
        ConfigError,
        match=r"^t\.yaml:12: AnalysisTemplate/t: spec\.metrics\[1\]: duplicate name 'm'$",
    ):
        AnalysisTemplate.from_manifest(manifest)


def test_fields_with_placeholders_are_checked_when_the_run_resolves_them() -> None:
    loaded = template("count: '{{args.count}}'\n" + PROMETHEUS, head="args:\n  - name: count\n")
    assert len(resolve_metrics(loaded.metrics, {"count": "1"})) == 1
    with pytest.raises(AnalysisSpecError) as info:
        resolve_metrics(loaded.metrics, {"count": "3"})
    assert str(info.value) == "metrics[0]: interval must be specified when count > 1"
    with pytest.raises(ArgumentError, match=r"^failed to resolve \{\{args\.count\}\}$"):
        resolve_metrics(loaded.metrics, {})


# -- Go durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("30s", 30.0),
        ("1m", 60.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("300ms", 0.3),
        ("-1.5h", -5400.0),
        ("+5s", 5.0),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("2h45m10.5s", 9910.5),
        ("10us", 1e-5),
        ("10µs", 1e-5),
        ("1ns", 1e-9),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("5", 'time: missing unit in duration "5"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        (".s", 'time: invalid duration ".s"'),
        ("-", 'time: invalid duration "-"'),
        ("1s2", 'time: missing unit in duration "1s2"'),
        ("s", 'time: invalid duration "s"'),
        ("9999999999h", 'time: invalid duration "9999999999h"'),
    ],
)
def test_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_go_duration(text)
    assert str(info.value) == message


units = st.sampled_from([("h", 3600), ("m", 60), ("s", 1), ("ms", 1e-3)])


@given(st.lists(st.tuples(st.integers(0, 999), units), min_size=1, max_size=4))
def test_any_sum_of_whole_units_parses_to_its_total(
    parts: list[tuple[int, tuple[str, float]]],
) -> None:
    text = "".join(f"{amount}{unit}" for amount, (unit, _) in parts)
    expected = sum(amount * size for amount, (_, size) in parts)
    assert parse_go_duration(text) == pytest.approx(expected)


@given(st.text(max_size=12))
def test_any_text_is_a_duration_or_a_duration_error(text: str) -> None:
    message = ""
    try:
        parse_go_duration(text)
    except DurationError as exc:
        message = str(exc)
    assert message == "" or message.startswith("time: ")
