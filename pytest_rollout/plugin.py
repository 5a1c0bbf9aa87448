"""pytest hooks, options, marker and fixtures of pytest-rollout (wiring only)."""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rollout import __version__, _proc, _tools, collect
from pytest_rollout.errors import ConfigError, InconclusiveError, RolloutError
from pytest_rollout.evidence import Evidence
from pytest_rollout.options import (
    BACKENDS,
    DEFAULT_ENDPOINT_DELAY,
    RolloutOptions,
    backend_name,
    config_file,
    kind_cluster_name,
    kube_context,
    kubeconfig_file,
    report_dir,
    seconds,
)

if TYPE_CHECKING:
    from pytest_rollout.backends.base import Cluster, Namespace
    from pytest_rollout.backends.local.prometheus import PrometheusServer
    from pytest_rollout.config import TargetConfig
    from pytest_rollout.experiment import Experiment
    from pytest_rollout.load import BackgroundLoad
    from pytest_rollout.progress import ProgressReporter
    from pytest_rollout.prom import PromClient
    from pytest_rollout.report.build import BuildResult
    from pytest_rollout.report.model import SessionInfo

MARKER = "rollout"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rollout", "pytest-rollout: rollout-safety experiments")
    group.addoption(
        "--rollout-backend",
        dest="rollout_backend",
        default="local",
        type=backend_name,
        metavar="NAME",
        help=f"where experiments run: {' or '.join(BACKENDS)} (default: local)",
    )
    group.addoption(
        "--rollout-report",
        dest="rollout_report",
        default=Path("rollout-report"),
        type=report_dir,
        metavar="DIR",
        help="directory for the evidence report (default: ./rollout-report)",
    )
    group.addoption(
        "--rollout-config",
        dest="rollout_config",
        default=None,
        type=config_file,
        metavar="PATH",
        help="the target config (default: the nearest rollout.toml, else pyproject.toml with "
        "[tool.pytest-rollout], from where pytest runs upwards, then beside its ini file)",
    )
    group.addoption(
        "--rollout-endpoint-delay",
        dest="rollout_endpoint_delay",
        default=DEFAULT_ENDPOINT_DELAY,
        type=seconds,
        metavar="SECONDS",
        help="local backend: how long a pod's readiness change takes to reach the router, "
        f"as endpoint propagation does on a cluster (default: {DEFAULT_ENDPOINT_DELAY:g})",
    )
    group.addoption(
        "--rollout-kubeconfig",
        dest="rollout_kubeconfig",
        default=None,
        type=kubeconfig_file,
        metavar="PATH",
        help="kube backend: use the existing cluster of this kubeconfig (never deleted) "
        "instead of a kind cluster",
    )
    group.addoption(
        "--rollout-context",
        dest="rollout_context",
        default=None,
        type=kube_context,
        metavar="NAME",
        help="kube backend: the kubeconfig context of an existing cluster to use",
    )
    group.addoption(
        "--rollout-keep-cluster",
        dest="rollout_keep_cluster",
        action="store_true",
        default=False,
        help="kube backend: keep the kind cluster this run creates, for fast reruns",
    )
    group.addoption(
        "--rollout-kind-cluster",
        dest="rollout_kind_cluster",
        default=None,
        type=kind_cluster_name,
        metavar="NAME",
        help="kube backend: the kind cluster to create or reuse (default: pytest-rollout)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name=None): a rollout-safety experiment (real processes, real load); "
        f"select with `-m {MARKER}`; name= names its report directory",
    )
    config.addinivalue_line(
        "markers",
        f"{MARKER}_alone: an experiment that runs several releases at once, or compares "
        "reaction times with each other: run it with nothing beside it, after a parallel "
        f"run of `-m '{MARKER} and not {MARKER}_alone'`",
    )
    options = RolloutOptions.resolve(
        base=Path(config.invocation_params.dir),
        backend=config.getoption("rollout_backend"),
        report=Path(config.getoption("rollout_report")),
        config=config.getoption("rollout_config"),
        endpoint_delay=config.getoption("rollout_endpoint_delay"),
        kubeconfig=config.getoption("rollout_kubeconfig"),
        context=config.getoption("rollout_context"),
        keep_cluster=config.getoption("rollout_keep_cluster"),
        kind_cluster=config.getoption("rollout_kind_cluster"),
    )
    config.stash[_OPTIONS_KEY] = options
    config.stash[_REPORTED_KEY] = {}
    from pytest_rollout.config_file import find_config_file

    try:
        active = find_config_file(_config_starts(config), options.config)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_CONFIG_PATH_KEY] = active
    # A broken config is reported once, by the file's own collection.
    with contextlib.suppress(ConfigError):
        collect.add_to_args(config, active)


def _config_starts(config: pytest.Config) -> list[Path]:
    """Where the target config is searched: from the invocation directory upwards, then beside
    the ini file, then the rootdir. Not the rootdir first: an option value pytest mistook for a
    path (``--rollout-report /tmp/report``) can move the rootdir out of the project."""
    starts = [Path(config.invocation_params.dir)]
    if config.inipath is not None:
        starts.append(config.inipath.parent)
    starts.append(config.rootpath)
    return starts


def pytest_report_header(config: pytest.Config) -> list[str]:
    options = config.stash[_OPTIONS_KEY]
    if options.backend == "kube":
        from pytest_rollout.backends.kube.cluster import component_versions, header

        runs = component_versions(options)
    else:
        haproxy = _tools.version(_tools.HAPROXY) or "not installed"
        prometheus = _tools.version(_tools.PROMETHEUS) or "not installed"
        runs = (
            f"endpoint-delay={options.endpoint_delay:g}s, haproxy {haproxy}, "
            f"prometheus {prometheus}"
        )
    lines = [
        f"rollout: pytest-rollout {__version__}, backend={options.backend}, "
        f"report={options.report}, config={config.stash.get(_CONFIG_PATH_KEY, None) or 'none'}, "
        f"{runs}, python {platform.python_version()}"
    ]
    if options.backend == "kube":
        lines.append(f"rollout: {header(options)}")
    addresses = _prometheus_addresses(config)
    if addresses:
        lines.append(
            "rollout: prometheus addresses: "
            + "; ".join(f"{source} -> {mapped}" for source, mapped in addresses.items())
        )
    return lines


def _prometheus_addresses(config: pytest.Config) -> dict[str, str]:
    path = config.stash.get(_CONFIG_PATH_KEY, None)
    if path is None:
        return {}
    from pytest_rollout.backends import prometheus_rewrites
    from pytest_rollout.config_file import load_config

    try:
        target = load_config(path)
    except ConfigError:
        return {}  # reported where the config is used
    return prometheus_rewrites(config.stash[_OPTIONS_KEY], target.prometheus_addresses)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    active = parent.config.stash.get(_CONFIG_PATH_KEY, None)
    if file_path.name not in ("rollout.toml", "pyproject.toml"):
        return None
    collector: pytest.Collector | None = collect.config_file(file_path, parent, active)
    return collector


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    config.stash[_CHECKPOINT_KEY] = _proc.checkpoint()
    started = time.time()
    config.stash[_STARTED_KEY] = started
    config.stash[_SESSION_KEY] = _session_info(config, started)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    try:
        _finish_report(session.config)
    finally:
        # The last line of defence, after session fixtures were torn down: whatever a fixture
        # failed to stop (an interrupted setup, a Ctrl-C between start and yield) is stopped.
        # Only what this session started: a session run inside another (pytester) must not
        # stop the outer one's processes.
        _proc.stop_all(since=session.config.stash.get(_CHECKPOINT_KEY, 0))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    result = terminalreporter.config.stash.get(_BUILT_KEY, None)
    if result is not None:
        terminalreporter.write_line(f"rollout report: {result.describe()}")
        for problem in result.problems:
            terminalreporter.write_line(f"rollout report: unreadable: {problem}", red=True)


def _session_info(config: pytest.Config, started: float) -> SessionInfo:
    from pytest_rollout.report.session import session_info

    return session_info(
        header=pytest_report_header(config),
        started=started,
        backend=config.stash[_OPTIONS_KEY].backend,
        args=config.invocation_params.args,
    )


def _finish_report(config: pytest.Config) -> None:
    """On the controller (not an xdist worker) of a session that wrote evidence: stamp the
    session record, rebuild the HTML report, append the CI job summary."""
    info = config.stash.get(_SESSION_KEY, None)
    if info is None or hasattr(config, "workerinput"):
        return
    from pytest_rollout.report.publish import finish_session

    result = finish_session(
        config.stash[_OPTIONS_KEY].report, info, since=config.stash[_STARTED_KEY]
    )
    if result is not None:
        config.stash[_BUILT_KEY] = result


_OPTIONS_KEY = pytest.StashKey[RolloutOptions]()
_CONFIG_PATH_KEY = pytest.StashKey["Path | None"]()
_CHECKPOINT_KEY = pytest.StashKey[int]()
_VERDICT_KEY = pytest.StashKey[tuple[str, str]]()
_REPORTED_KEY = pytest.StashKey[dict[str, str]]()
_SESSION_KEY: pytest.StashKey[SessionInfo] = pytest.StashKey()
_STARTED_KEY = pytest.StashKey[float]()
_BUILT_KEY: pytest.StashKey[BuildResult] = pytest.StashKey()
_NOT_RUN = ("error", "the experiment did not run to its end (setup failed or was interrupted)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_VERDICT_KEY] = _verdict(report, call)
    if call.excinfo is not None and call.excinfo.errisinstance(ConfigError):
        report.longrepr = _config_error_once(item, str(call.excinfo.value))
    return report


def _config_error_once(item: pytest.Item, message: str) -> str:
    """A mistake in the user's config or manifests is one line, reported once: every other
    test that meets it points back to the first."""
    reported = item.config.stash[_REPORTED_KEY]
    first = reported.setdefault(message, item.nodeid)
    return message if first == item.nodeid else f"the same configuration error as {first}"


def _verdict(report: pytest.TestReport, call: pytest.CallInfo[None]) -> tuple[str, str]:
    """The experiment's verdict and the one-line reason, from its call phase."""
    if report.passed:
        return "passed", ""
    if report.skipped:
        return "skipped", call.excinfo.exconly() if call.excinfo else ""
    message = call.excinfo.exconly() if call.excinfo else str(report.longrepr)
    if call.excinfo is not None and call.excinfo.errisinstance(InconclusiveError):
        return "inconclusive", message
    return "failed", message


def _passed(request: pytest.FixtureRequest) -> bool:
    verdict, _ = request.node.stash.get(_VERDICT_KEY, _NOT_RUN)
    return verdict in ("passed", "skipped")


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rollout_options(pytestconfig: pytest.Config) -> RolloutOptions:
    """The validated ``--rollout-*`` options of this run."""
    return pytestconfig.stash[_OPTIONS_KEY]


@pytest.fixture(scope="session")
def rollout_target(pytestconfig: pytest.Config, rollout_options: RolloutOptions) -> TargetConfig:
    """The target config: what the plugin knows about the service beyond its manifests."""
    from pytest_rollout.config_file import load_target_config

    return load_target_config(_config_starts(pytestconfig), rollout_options.config)


@pytest.fixture(scope="session")
def rollout_cluster(
    rollout_options: RolloutOptions,
    rollout_target: TargetConfig,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """The backend's cluster for the session (one per xdist worker): expensive, shared."""
    from pytest_rollout.backends import open_cluster

    try:
        cluster = open_cluster(rollout_options, tmp_path_factory.mktemp("cluster"), rollout_target)
    except RolloutError as exc:
        # The backend's errors are one-line messages meant for the user (a missing tool, an
        # unreachable cluster, a failed install step): the backend's traceback would bury them,
        # and every test of the session would repeat it.
        raise ConfigError(f"--rollout-backend={rollout_options.backend}: {exc}") from exc
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def rollout_namespace(
    request: pytest.FixtureRequest, rollout_cluster: Cluster, rollout_options: RolloutOptions
) -> Iterator[Namespace]:
    """A namespace of the test's own, deleted afterwards; on failure its pod logs and events
    are captured into the report first."""
    from pytest_rollout.backends import namespace_name
    from pytest_rollout.experiment import close_namespace

    namespace = rollout_cluster.create_namespace(namespace_name(request.node.name))
    try:
        yield namespace
    finally:
        close_namespace(
            namespace,
            passed=_passed(request),
            capture_dir=rollout_options.report / "_namespaces",
        )


@pytest.fixture
def rollout_load(rollout_target: TargetConfig) -> Iterator[Callable[..., BackgroundLoad]]:
    """Start open-loop load with the target's request mix and version extractor:
    ``rollout_load(url, rate=..., duration=...)``. Every load still running is stopped at the
    end of the test."""
    from pytest_rollout.load import BackgroundLoad, LoadSpec

    started: list[BackgroundLoad] = []

    def start(url: str, *, rate: float, duration: float, **kwargs: Any) -> BackgroundLoad:
        spec = LoadSpec(
            url=url,
            rate=rate,
            duration=duration,
            mix=rollout_target.requests,
            version=rollout_target.version,
            **kwargs,
        )
        load = BackgroundLoad(spec).start()
        started.append(load)
        return load

    yield start
    for load in started:
        if load.running:
            load.stop()


@pytest.fixture
def rollout_evidence(
    request: pytest.FixtureRequest, rollout_options: RolloutOptions
) -> Iterator[Callable[[str], Evidence]]:
    """Factory of :class:`Evidence` records, written to the report when the test ends.

    The verdict comes from the test's own outcome: passed, failed, or inconclusive when it
    failed with :class:`InconclusiveError`.
    """
    made: list[Evidence] = []

    def make(experiment: str) -> Evidence:
        evidence = Evidence(experiment=experiment, backend=rollout_options.backend)
        made.append(evidence)
        return evidence

    yield make
    verdict, message = request.node.stash.get(_VERDICT_KEY, _NOT_RUN)
    for evidence in made:
        evidence.verdict, evidence.message = verdict, message
        directory = evidence.write(rollout_options.report)
        properties = {"verdict": verdict, **evidence.metrics}
        if evidence.headline:
            properties["headline"] = evidence.headline
        for key, value in properties.items():
            request.node.user_properties.append((f"{evidence.experiment}.{key}", value))
        _render_experiment(request.config, rollout_options.report, directory)


def _render_experiment(config: pytest.Config, report: Path, directory: Path) -> None:
    """The experiment's page and timeline.png right away, so an interrupted session still
    leaves them; the index follows at the session's end."""
    from pytest_rollout.report.build import render_experiment
    from pytest_rollout.report.publish import record_session

    info = config.stash.get(_SESSION_KEY, None)
    if info is not None:
        record_session(report, info)
    render_experiment(directory)


@pytest.fixture
def rollout_progress(pytestconfig: pytest.Config) -> Iterator[ProgressReporter]:
    """The live progress display of this test: hand it to the release runner, which calls
    ``update(ProgressSnapshot(...))`` about four times a second. Closed when the test ends.

    One line rewritten on a terminal, a line per state change elsewhere (CI), nothing under
    ``-q`` or on an xdist worker."""
    from pytest_rollout.progress import progress_reporter

    reporter = progress_reporter(pytestconfig)
    try:
        yield reporter
    finally:
        reporter.close()


@pytest.fixture
def rollout(
    request: pytest.FixtureRequest,
    rollout_options: RolloutOptions,
    rollout_cluster: Cluster,
    rollout_target: TargetConfig,
    rollout_load: Callable[..., BackgroundLoad],
    rollout_evidence: Callable[[str], Evidence],
    rollout_progress: ProgressReporter,
) -> Iterator[Experiment]:
    """Releases of the target under load: ``rollout.release("bad", manifests="bad-canary")``
    returns a typed :class:`~pytest_rollout.runs.ReleaseRun` to assert on. Every namespace it
    made is deleted when the test ends, and its evidence lands in the report under the
    experiment's name (``@pytest.mark.rollout(name=...)``, else the test's name)."""
    from pytest_rollout.backends import prometheus_rewrites
    from pytest_rollout.experiment import Experiment, experiment_name

    spec = request.node.stash.get(collect.SPEC_KEY, None)
    marker = request.node.get_closest_marker(MARKER)
    named = marker.kwargs.get("name") if marker is not None else None
    name = spec.name if spec is not None else named or experiment_name(request.node.name)
    evidence = rollout_evidence(name)
    evidence.kind = spec.kind if spec is not None else None
    rewrites = prometheus_rewrites(rollout_options, rollout_target.prometheus_addresses)
    if rewrites:
        evidence.record(prometheus_addresses=rewrites)
    experiment = Experiment(
        name,
        cluster=rollout_cluster,
        target=rollout_target,
        start_load=rollout_load,
        evidence=evidence,
        test_name=request.node.name,
        progress=rollout_progress,
    )
    try:
        yield experiment
    finally:
        experiment.close(
            passed=_passed(request), capture_dir=rollout_options.report / "_namespaces"
        )


@pytest.fixture
def rollout_prometheus(rollout_cluster: Cluster) -> Iterator[PromClient]:
    """A query client for the cluster's own Prometheus, the one the Rollouts' analyses ask
    (local: the backend's server; kube: the installed one, through its mapped port or a
    port-forward)."""
    from pytest_rollout.prom import PromClient

    with PromClient(rollout_cluster.prometheus_url()) as client:
        yield client


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A standalone Prometheus (1 s scrape, file discovery) for the session, per xdist worker,
    for tests that bring their own scrape targets."""
    from pytest_rollout.backends.local.prometheus import PrometheusServer

    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def prom(prometheus_server: PrometheusServer) -> Iterator[PromClient]:
    """A query client for the standalone :func:`prometheus_server`."""
    with prometheus_server.client() as client:
        yield client
