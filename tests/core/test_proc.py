"""Child processes are always stopped: by stop(), by stop_all(), and on an interrupted run."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_rollout._proc import ManagedProcess, free_port, live_processes, port_accepts
from pytest_rollout._wait import wait_for
from pytest_rollout.errors import ProcessError

# A parent that ignores SIGTERM and forks a child that ignores it too: the worst case for cleanup.
STUBBORN = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_stop_kills_the_whole_group_after_grace(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    proc = ManagedProcess("stubborn", [sys.executable, "-c", STUBBORN], log_path=log).start()
    child_pid = int(wait_for(lambda: log.read_text().strip(), what="child pid in log", timeout=10))
    assert proc in live_processes()
    proc.stop(grace=0.3)
    assert proc.pid is not None
    assert not _alive(proc.pid)
    wait_for(lambda: not _alive(child_pid), what=f"child {child_pid} to die", timeout=5)
    assert proc not in live_processes()


def test_stop_is_idempotent_and_reports_exit_code() -> None:
    proc = ManagedProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    with proc:
        assert proc.running()
    assert proc.returncode is not None
    assert proc.stop() == proc.returncode


def test_missing_binary_is_a_process_error() -> None:
    with pytest.raises(ProcessError, match="no-such-binary: cannot start"):
        ManagedProcess("no-such-binary", ["/nonexistent/no-such-binary"]).start()


def test_free_port_is_bindable_and_unused() -> None:
    port = free_port()
    assert not port_accepts("127.0.0.1", port)


@pytest.mark.slow
def test_interrupted_run_leaves_no_process(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    pytester.makepyfile(
        f"""
        import sys
        from pytest_rollout._proc import ManagedProcess

        def test_interrupted():
            proc = ManagedProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"])
            proc.start()
            open({str(pidfile)!r}, "w").write(str(proc.pid))
            raise KeyboardInterrupt
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    pid = int(pidfile.read_text())
    assert not _alive(pid), f"process {pid} outlived the interrupted pytest run"


@pytest.mark.slow
def test_an_inner_session_spares_the_outer_sessions_processes(pytester: pytest.Pytester) -> None:
    outer = ManagedProcess("outer", [sys.executable, "-c", "import time; time.sleep(60)"]).start()
    try:
        pytester.makepyfile(
            """
            import sys
            from pytest_rollout._proc import ManagedProcess

            def test_leaves_one_running():
                argv = [sys.executable, "-c", "import time; time.sleep(60)"]
                ManagedProcess("inner", argv).start()
            """
        )
        result = pytester.runpytest()  # in this process: the plugin's session hooks run here
        result.assert_outcomes(passed=1)
        assert outer.running(), "the inner session stopped a process the outer one started"
        assert not [p for p in live_processes() if p.name == "inner"], "the inner one is stopped"
    finally:
        outer.stop()
