"""Counter series to counts since the judge's first look: baselines, resets, gaps, new series."""

from __future__ import annotations

import math
import re

from pytest_rollout.judge.counters import (
    CounterTracker,
    SeriesKey,
    series_key,
    version_counts,
)
from pytest_rollout.judge.sequential import VersionCounts

ERRORS = re.compile("5..")


def key(pod: str, code: str = "200", version: str = "abc", **extra: str) -> SeriesKey:
    return series_key({"pod": pod, "code": code, "rollouts_pod_template_hash": version, **extra})


def test_series_at_the_first_look_count_from_their_value_then() -> None:
    tracker = CounterTracker()
    first = {key("stable-0"): 5000.0}
    tracker.update(first, baselines=first)
    tracker.update({key("stable-0"): 5040.0}, baselines={})
    assert tracker.increases == {key("stable-0"): 40.0}


def test_new_series_count_from_zero_unless_they_existed_at_the_first_look() -> None:
    tracker = CounterTracker()
    tracker.update({key("stable-0"): 10.0}, baselines={key("stable-0"): 10.0})
    later = {
        key("stable-0"): 12.0,
        key("canary-0"): 7.0,  # a new pod
        key("stable-0", code="500"): 3.0,  # the stable's first 5xx since the first look
        key("stable-1"): 900.0,  # missed by the first answer (failed scrape), 880 then
    }
    assert tracker.unseen(later) == {key("canary-0"), key("stable-0", code="500"), key("stable-1")}
    tracker.update(later, baselines={key("stable-1"): 880.0})
    assert tracker.increases == {
        key("stable-0"): 2.0,
        key("canary-0"): 7.0,
        key("stable-0", code="500"): 3.0,
        key("stable-1"): 20.0,
    }


def test_a_reset_counts_the_new_value_and_a_gap_only_what_is_new() -> None:
    tracker = CounterTracker()
    tracker.update({key("canary-0"): 100.0}, baselines={key("canary-0"): 90.0})
    tracker.update({key("canary-0"): 4.0}, baselines={})  # the container restarted
    tracker.update({}, baselines={})  # a failed scrape: no series at all
    tracker.update({key("canary-0"): 6.0}, baselines={})
    assert tracker.increases == {key("canary-0"): 10.0 + 4.0 + 2.0}


def bucket(pod: str, le: str, version: str = "abc") -> SeriesKey:
    return series_key({"pod": pod, "le": le, "rollouts_pod_template_hash": version})


def test_version_counts_sum_a_version_s_series() -> None:
    requests = {
        key("c0"): 10.0,
        key("c0", code="500"): 4.0,
        key("c0", code="503"): 1.0,
        key("c0", code="404"): 2.0,
        key("c1", code="5000"): 9.0,  # not a 5xx status: the whole code must match
        key("s0", version="def"): 100.0,
    }
    buckets = {
        bucket("c0", "0.1"): 6.0,
        bucket("c0", "0.5"): 16.0,
        bucket("c0", "+Inf"): 17.0,
        bucket("c1", "0.1"): 1.0,
        bucket("c1", "0.5"): 0.0,  # a reset seen in one bucket series only
        bucket("c1", "+Inf"): 9.0,
        bucket("c1", "bogus"): 3.0,
        bucket("s0", "+Inf", version="def"): 100.0,
    }
    canary = version_counts(requests, buckets, "abc", error_code=ERRORS)
    assert canary == VersionCounts(26.0, 5.0, {0.1: 7.0, 0.5: 16.0, math.inf: 26.0})
    stable = version_counts(requests, buckets, "def", error_code=ERRORS)
    assert stable == VersionCounts(100.0, 0.0, {math.inf: 100.0})
    assert version_counts({}, {}, "none", error_code=ERRORS) == VersionCounts()
