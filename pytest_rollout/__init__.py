"""pytest-rollout: prove by experiment that a progressive-delivery setup contains bad releases."""

from pytest_rollout.errors import (
    ConfigError,
    InconclusiveError,
    ProcessError,
    PrometheusError,
    RolloutError,
    WaitTimeout,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "InconclusiveError",
    "ProcessError",
    "PrometheusError",
    "RolloutError",
    "WaitTimeout",
    "__version__",
]
