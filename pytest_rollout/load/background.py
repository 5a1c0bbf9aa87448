"""Synchronous entry points: run a load to completion here, or in a process of its own while a
test goes on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType

import pytest_rollout
from pytest_rollout._proc import ManagedProcess
from pytest_rollout.errors import ProcessError, RolloutError, WaitTimeout
from pytest_rollout.load.clock import PROCESS_CLOCK, Clock
from pytest_rollout.load.generator import DISPATCH_GRACE, LoadGenerator
from pytest_rollout.load.spec import LoadSpec
from pytest_rollout.load.traffic import RequestRecord, TrafficLog
from pytest_rollout.load.wire import (
    BATCH,
    END,
    FAILURE,
    STOP,
    STRINGS,
    RecordDecoder,
    read_frame,
)

_START_TIMEOUT = 15.0
_JOIN_MARGIN = 5.0
_EXIT_GRACE = 2.0
_PACKAGE_ROOT = Path(pytest_rollout.__file__).resolve().parent.parent


def run_load(spec: LoadSpec, *, clock: Clock | None = None) -> TrafficLog:
    """Run ``spec`` to the end on a fresh event loop in this thread and return its log.

    Pass the ``clock`` an experiment stamps its events with to share one time base.
    """
    with asyncio.Runner() as runner:
        return runner.run(LoadGenerator(spec, clock=clock).run())


class BackgroundLoad:
    """Runs a :class:`LoadSpec` in a process of its own while the test goes on.

    Use it as a context manager; leaving the block stops the schedule, waits for the requests
    in flight (each bounded by the spec's timeout), and reaps the process. :attr:`log` grows
    while the load runs: the process sends its records every 50 ms.

    The generator's event loop shares no interpreter lock with pytest and the local backend's
    controller, so their computing cannot delay a request; only a machine short of CPU can,
    and then lateness rises and the log says *inconclusive* rather than mislead. Records are
    stamped with ``clock`` (default: this process's clock) — the child is given its base, so
    request times and the test's own instants are on one time base. If the test process dies,
    even by SIGKILL, the generator sees its stdin close and exits at once.
    """

    def __init__(self, spec: LoadSpec, *, clock: Clock | None = None) -> None:
        self.spec = spec
        self._clock = clock if clock is not None else PROCESS_CLOCK
        self._decoder = RecordDecoder(spec.mix)
        self._records: list[RequestRecord] = []
        self._process: ManagedProcess | None = None
        self._reader: threading.Thread | None = None
        self._first_frame = threading.Event()
        self._requested_at: float | None = None
        self._ended = False
        self._failure: str | None = None
        self._stream_error: BaseException | None = None
        self._result: TrafficLog | None = None
        self._exit_status: int | None = None
        self._log_tail: str | None = None
        self.startup: float | None = None
        """Seconds from :meth:`start` to the generator's loop running in its process."""

    def __repr__(self) -> str:
        state = "running" if self.running else "idle"
        return f"<BackgroundLoad {self.spec.url} {self.spec.rate:g} req/s {state} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        """The generator process's id, once started."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    @property
    def log(self) -> TrafficLog:
        """The final log once stopped; before that, the requests completed so far."""
        if self._result is not None:
            return self._result
        started_at = self._decoder.started_at
        if started_at is None:
            started_at = self._requested_at if self._requested_at is not None else 0.0
        return TrafficLog(
            list(self._records),
            target_rate=self.spec.rate,
            started_at=started_at,
            dropped=self._decoder.dropped,
            peak_in_flight=self._decoder.peak_in_flight,
        )

    def start(self) -> BackgroundLoad:
        """Start the generator's process; return once its loop runs and the schedule starts."""
        if self._process is not None:
            raise RolloutError(f"{self!r}: already started; a BackgroundLoad runs once")
        handle, log_path = tempfile.mkstemp(prefix="pytest-rollout-load-", suffix=".log")
        os.close(handle)
        process = ManagedProcess(
            "load-generator",
            [sys.executable, "-m", "pytest_rollout.load.child"],
            env=_child_env(),
            log_path=log_path,
            pipes=True,
        )
        self._requested_at = self._clock.now()
        self._process = process.start()
        payload = pickle.dumps((self.spec, self._clock.base, log_path))
        # A child that died at once shows as a closed pipe here and is reported below.
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write(len(payload).to_bytes(4, "little") + payload)
            process.stdin.flush()
        self._reader = threading.Thread(target=self._read, name="pytest-rollout-load", daemon=True)
        self._reader.start()
        if not self._first_frame.wait(_START_TIMEOUT):
            self._kill()
            raise WaitTimeout(
                f"timed out after {_START_TIMEOUT:g}s waiting for the load generator's process "
                f"(pid {process.pid}) to start its event loop{self._log_tail_text()}"
            )
        self.startup = self._clock.now() - self._requested_at
        if not self.running and not self._ended:
            self._finish()  # it died before its first frame: raises with the reason
        return self

    def stop(self, timeout: float | None = None) -> TrafficLog:
        """End the schedule now and return the final log; idempotent.

        Waits up to ``timeout`` seconds (default: the request timeout plus a margin) for the
        requests in flight; then kills the process and raises :class:`WaitTimeout`.
        """
        process = self._require_started()
        if self._result is None:
            # Gone, or already closed: either way the child has its end of file.
            with contextlib.suppress(BrokenPipeError, ValueError):
                process.stdin.write(STOP)
                process.stdin.close()
        wait = timeout if timeout is not None else self.spec.timeout + _JOIN_MARGIN
        return self._join(wait, kill=True)

    def wait(self, timeout: float | None = None) -> TrafficLog:
        """Wait for the run to end by itself (duration or count reached); return the log.

        Raises :class:`WaitTimeout` when ``timeout`` passes first; the load goes on.
        """
        self._require_started()
        schedule = self.spec.planned / self.spec.rate + DISPATCH_GRACE + self.spec.timeout
        return self._join(timeout if timeout is not None else schedule + _JOIN_MARGIN, kill=False)

    def _require_started(self) -> ManagedProcess:
        if self._process is None:
            raise RolloutError(f"{self!r}: never started")
        return self._process

    def _join(self, timeout: float, *, kill: bool) -> TrafficLog:
        if self._result is not None:
            return self._result
        reader = self._reader
        assert reader is not None, "a started load has a reader"
        reader.join(timeout)
        if reader.is_alive():
            completed = len(self._records)
            if kill:
                self._kill()
            raise WaitTimeout(
                f"timed out after {timeout:g}s waiting for the load generator to finish "
                f"({completed} requests completed so far)"
                + ("; its process was killed" if kill else "")
            )
        return self._finish()

    def _kill(self) -> None:
        """Stop the process now; the reader then sees the end of its stream and cleans up."""
        process = self._require_started()
        process.stop(grace=_EXIT_GRACE)
        if self._reader is not None:
            self._reader.join(_EXIT_GRACE)

    def _read(self) -> None:
        """Decode the child's frames into :attr:`log` until its stdout closes, then reap it."""
        process = self._require_started()
        try:
            while (item := read_frame(process.stdout)) is not None:
                kind, payload = item
                if kind == BATCH:
                    self._records.extend(self._decoder.batch(payload))
                elif kind == STRINGS:
                    self._decoder.strings(payload)
                elif kind == END:
                    self._ended = True
                elif kind == FAILURE:
                    self._failure = payload.decode(errors="replace")
                else:
                    raise RolloutError(f"load generator stream: unknown frame kind {kind!r}")
                self._first_frame.set()
        except BaseException as exc:  # handed to the caller's thread by _finish()
            self._stream_error = exc
        finally:
            self._release(process)
            self._first_frame.set()

    def _release(self, process: ManagedProcess) -> None:
        """Reap the process and free what the run held: pipes, log file, registry entry.

        Done by the reader as soon as the stream ends, so a load that ran its course leaves
        nothing behind even if nobody calls :meth:`wait` or :meth:`stop`.
        """
        with contextlib.suppress(ProcessError):
            process.wait(_EXIT_GRACE)
        self._exit_status = process.stop(grace=_EXIT_GRACE)
        for pipe in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        self._log_tail = process.log_tail()
        if process.log_path is not None:
            process.log_path.unlink(missing_ok=True)

    def _finish(self) -> TrafficLog:
        """The final log of a run whose stream has ended, or the error that ended it."""
        where = f"the load generator's process (pid {self.pid})"
        if self._failure is not None:
            raise RolloutError(f"{where} failed:\n{self._failure.rstrip()}")
        if self._stream_error is not None:
            raise RolloutError(f"{where}: {self._stream_error}") from self._stream_error
        if not self._ended:
            raise RolloutError(
                f"{where} exited with status {self._exit_status} before the run ended "
                f"({len(self._records)} requests recorded){self._log_tail_text()}"
            )
        self._result = self.log
        return self._result

    def _log_tail_text(self) -> str:
        tail = self._log_tail
        if tail is None and self._process is not None:
            tail = self._process.log_tail()
        return f"; its log:\n{tail}" if tail else ""

    def __enter__(self) -> BackgroundLoad:
        return self.start() if self._process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _child_env() -> dict[str, str]:
    """This environment, with this package importable whatever the child's sys.path."""
    env = dict(os.environ)
    paths = [str(_PACKAGE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env
