"""Collection of the declarative experiments: ``rollout.toml::NAME`` test items.

The target config file of the run (``rollout.toml``, or ``pyproject.toml`` with the table) is
collected as a file whose items are its ``[experiments.NAME]`` tables, each marked ``rollout``
and run by its kind on the ``rollout`` fixture. The file is collected wherever pytest walks,
and also when the run names no paths (``testpaths`` or the invocation directory) but the
config lies outside them, so that ``pytest -m rollout`` finds the experiments.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rollout.config_file import CONFIG_FILE_NAME, PYPROJECT_FILE_NAME, load_config
from pytest_rollout.errors import ConfigError, RolloutError

if TYPE_CHECKING:
    # The kinds import the whole experiment API: only a run that collects experiments needs it.
    from pytest_rollout.kinds import ExperimentSpec

SPEC_KEY = pytest.StashKey["ExperimentSpec"]()
"""Where an experiment item keeps its validated table, for the ``rollout`` fixture."""


def config_file(file_path: Path, parent: pytest.Collector, active: Path | None) -> Any:
    """The collector of ``file_path`` when it is the run's target config, else None.

    Another ``rollout.toml`` met on the way is not collected, with a warning naming the one in
    use: one run has one target (one set of images and variants).
    """
    if active is not None and file_path.resolve() == active.resolve():
        return TargetConfigFile.from_parent(parent, path=file_path)
    if file_path.name == CONFIG_FILE_NAME:
        warnings.warn(
            pytest.PytestConfigWarning(
                f"{file_path}: its experiments are not collected: the target config of this "
                f"run is {active or 'none'} (choose one with --rollout-config)"
            ),
            stacklevel=1,
        )
    return None


def add_to_args(config: pytest.Config, active: Path | None) -> None:
    """Have the run collect ``active`` when it names no paths and the config lies outside
    what it would walk (``testpaths = ["tests"]`` beside ``rollout.toml``)."""
    if active is None or config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    if active.name == PYPROJECT_FILE_NAME and not load_config(active).experiments:
        return
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        path = (base / arg.split("::", 1)[0]).resolve()
        if active.resolve() == path or path in active.resolve().parents:
            return
    config.args.append(str(active))


class TargetConfigFile(pytest.File):
    """The target config; its items are the ``[experiments]`` tables."""

    def collect(self) -> Iterator[pytest.Item]:
        from pytest_rollout.kinds import kinds, parse_experiment

        target = load_config(self.path)
        specs: list[ExperimentSpec] = []
        errors: list[str] = []
        for name, table in target.experiments.items():
            try:
                specs.append(parse_experiment(name, table, target))
            except ConfigError as exc:
                errors.append(str(exc))
        if errors:
            raise ConfigError("\n".join(errors))
        for spec in specs:
            item = ExperimentItem.from_parent(
                self, name=spec.name, callobj=_runner(spec.kind), originalname=spec.name
            )
            item.stash[SPEC_KEY] = spec
            item.add_marker(pytest.mark.rollout)
            if kinds()[spec.kind].runs_alone:
                item.add_marker(pytest.mark.rollout_alone)
            item.extra_keyword_matches.add(spec.kind)
            yield item

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str | Any:
        if isinstance(excinfo.value, ConfigError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class ExperimentItem(pytest.Function):
    """One ``[experiments.NAME]`` table, run by its kind."""

    def reportinfo(self) -> tuple[Path, int | None, str]:
        spec = self.stash.get(SPEC_KEY, None)
        return self.path, None, f"{self.name} ({spec.kind if spec else 'experiment'})"

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str | Any:
        # The experiment's own code is the plugin's: its traceback tells the user nothing that
        # the evidence in the message does not. A bug (any other exception) keeps it.
        if isinstance(excinfo.value, AssertionError | RolloutError):
            return excinfo.exconly()
        return super().repr_failure(excinfo)


def _runner(kind_name: str) -> Any:
    from pytest_rollout.kinds import kinds

    kind = kinds()[kind_name]

    def run_experiment(rollout: Any, request: pytest.FixtureRequest) -> None:
        kind.run(rollout, request.node.stash[SPEC_KEY])

    run_experiment.__doc__ = kind.summary
    return run_experiment
