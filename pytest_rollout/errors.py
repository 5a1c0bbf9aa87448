"""The plugin's exception hierarchy.

Every error the plugin raises on purpose derives from :class:`RolloutError`, so a caller can
catch the plugin's failures without catching programming errors. Each carries a one-line,
human-readable message that names what was expected and what was seen.
"""

from __future__ import annotations


class RolloutError(Exception):
    """Base class of every error raised by pytest-rollout on purpose."""


class ConfigError(RolloutError):
    """A configuration file, manifest or command-line value is invalid.

    The message names the file or field and what is allowed.
    """


class WaitTimeout(RolloutError):
    """A condition awaited with a deadline did not become true in time.

    The message names the condition, the deadline and the last observation.
    """


class ProcessError(RolloutError):
    """A child process (service, HAProxy, Prometheus) failed to start or died unexpectedly."""


class BackendError(RolloutError):
    """The backend's own machinery failed in the background (a controller's reconcile, a pod's
    probe loop or readiness observer, a router update).

    Raised by the next wait on what the failure concerns, at once, chained to the original
    exception and its traceback, rather than left to turn into a timeout.
    """


class PrometheusError(RolloutError):
    """Prometheus could not be reached, or answered a query with an error."""


class InconclusiveError(RolloutError, AssertionError):
    """An experiment could not observe the property it tests.

    It derives from AssertionError so that pytest reports it as a failure, never a pass: an
    experiment that could not measure what it claims must not go green.
    """
