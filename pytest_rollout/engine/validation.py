"""Every Argo Rollouts object of a manifest set checked against the supported subset at once.

:func:`check_manifests` reads each ``Rollout``, ``AnalysisTemplate`` and
``ClusterAnalysisTemplate`` with the engine's models, so that a field the local engine does not
model, or a malformed one, is refused when the manifests are loaded, before any of them is
applied. It reports every document's errors in one :class:`ConfigError`, each document's own
error naming all of its unsupported fields.
"""

from __future__ import annotations

from collections.abc import Iterable

from pytest_rollout.engine.analysis import AnalysisTemplate
from pytest_rollout.engine.analysis.model import TEMPLATE_KINDS
from pytest_rollout.engine.rollout_model import parse_rollout
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import Manifest


def check_manifests(manifests: Iterable[Manifest]) -> None:
    """ConfigError listing the problems of every Rollout and analysis template given."""
    problems: list[str] = []
    for manifest in manifests:
        try:
            if manifest.kind == "Rollout":
                parse_rollout(manifest)
            elif manifest.kind in TEMPLATE_KINDS:
                AnalysisTemplate.from_manifest(manifest)
        except ConfigError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(
            f"{len(problems)} manifests are outside what the rollout engine supports:\n"
            + "\n".join(problems)
        )
