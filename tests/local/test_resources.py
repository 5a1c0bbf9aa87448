"""Resource sampling of the local backend: a process tree's RSS, read from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from pytest_rollout._wait import wait_for
from pytest_rollout.backends.local.resources import ProcessTable

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

ALLOCATED = 64 * 1024 * 1024

# A parent that starts a child holding 64 MiB, then both wait to be killed.
TREE = f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import sys, time; block = bytearray({ALLOCATED}); block[::4096] = b'x' * len(block[::4096]);"
    " print('held', flush=True); time.sleep(60)"], stdout=sys.stdout)
time.sleep(60)
"""


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-c", TREE], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"held"
        yield process
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_a_pods_memory_is_the_rss_of_its_whole_process_tree(
    tree: subprocess.Popen[bytes],
) -> None:
    table = ProcessTable.read()
    children = table.children[tree.pid]
    assert len(children) == 1
    own = table.rss[tree.pid]
    total = table.tree_rss([tree.pid])
    assert total == own + table.rss[children[0]]
    assert total >= ALLOCATED, f"{total} bytes for a tree holding {ALLOCATED}"
    assert table.tree_rss([]) == 0


def test_a_finished_process_counts_nothing(tree: subprocess.Popen[bytes]) -> None:
    pid = tree.pid
    os.killpg(pid, signal.SIGKILL)
    tree.wait()
    assert wait_for(
        lambda: ProcessTable.read().tree_rss([pid]) == 0 or None,
        what=f"process {pid} to leave /proc",
        timeout=5.0,
    )


def test_a_sample_is_cheap_enough_for_four_a_second() -> None:
    started = time.perf_counter()
    for _ in range(20):
        ProcessTable.read()
    per_sample = (time.perf_counter() - started) / 20
    # Generous for a busy shared machine; a quiet one reads a few hundred processes in ~2 ms.
    assert per_sample < 0.1, f"{per_sample * 1e3:.1f} ms per /proc scan"
