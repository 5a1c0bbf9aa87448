"""The container runtime's side of a local pod: start a container's process, kill it, and
record how it ended.

What is followed (``pkg/kubelet/kuberuntime/kuberuntime_container.go``):

* Start (``startContainer``): events ``Pulled`` and ``Created`` ("Created container: x"), then
  the process; a process that cannot be started ends the container at once (``StartError``,
  exit code 128) with a ``Failed`` warning. The ``Started`` event is the pod's to record, once
  its own state follows.
* Kill (``killContainer``): ``Killing``; the preStop hook (exec, httpGet or sleep) within the
  grace period, which is counted from ``since``; then SIGTERM to the container's main process;
  after the rest of the grace period -- never less than the kubelet's 2 s minimum -- SIGKILL to
  every process of the container. A hook that failed before the grace period ran out records
  ``FailedPreStopHook`` ("PreStopHook failed").

Each container runs as a ManagedProcess in a session of its own, so that "every process of the
container" is its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from pytest_rollout._proc import ManagedProcess
from pytest_rollout.backends.local import events as ev
from pytest_rollout.backends.local.events import EventRecorder, ObjectRef
from pytest_rollout.backends.local.pod_spec import PreStopAction, SleepAction
from pytest_rollout.backends.local.pod_status import ContainerRecord, ContainerState
from pytest_rollout.backends.local.probes import ProbeTarget, execute, wait_for_exit
from pytest_rollout.errors import ProcessError

MINIMUM_GRACE_SECONDS = 2
SIGKILL_WAIT_SECONDS = 10.0


class ContainerRuntime:
    """Starts and kills the containers of one pod, recording the runtime's events on it."""

    def __init__(
        self,
        ref: ObjectRef,
        events: EventRecorder,
        clock: Callable[[], float],
        *,
        time_scale: float,
    ) -> None:
        self.ref = ref
        self._events = events
        self._clock = clock
        self._time_scale = time_scale

    def start(self, container: ContainerRecord, log_path: Path) -> bool:
        """Start the container's process; False (and a terminated ``StartError`` state) when
        it could not be started."""
        launch = container.launch
        assert launch is not None
        spec = container.spec
        self._events.normal(
            self.ref, ev.PULLED, f'Container image "{spec.image}" already present on machine'
        )
        process = ManagedProcess(
            f"pod {self.ref.namespace}/{self.ref.name}"
            + (f" init container {spec.name}" if container.init else ""),
            launch.argv,
            env=container.env,
            cwd=launch.cwd,
            log_path=log_path,
            background=True,
        )
        self._events.normal(self.ref, ev.CREATED, f"Created container: {spec.name}")
        try:
            process.start()
        except ProcessError as exc:
            now = self._clock()
            container.state = ContainerState("terminated", "StartError", 128, now, now)
            container.last_state = container.state
            self._events.warning(self.ref, ev.FAILED, f"Error: {exc}")
            return False
        container.process = process
        container.state = ContainerState("running", started_at=self._clock())
        return True

    async def kill(
        self,
        container: ContainerRecord,
        message: str,
        grace: float,
        *,
        since: float,
        target: ProbeTarget | None,
    ) -> None:
        """``killContainer``: Killing event, preStop within the grace period, SIGTERM, SIGKILL.

        ``target`` is where the preStop hook runs (the pod's IP and environment).
        """
        process = container.process
        assert process is not None
        self._events.normal(self.ref, ev.KILLING, message)
        deadline = since + grace
        pre_stop = container.spec.pre_stop
        if pre_stop is not None and grace > 0:
            assert target is not None
            await self._run_pre_stop(pre_stop, target, max(0.0, deadline - self._clock()))
        remaining = max(deadline - self._clock(), MINIMUM_GRACE_SECONDS * self._time_scale)
        pid = process.pid
        if pid is not None and process.returncode is None:
            # As a container runtime does: SIGTERM to the main process only.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if await wait_for_exit(process, remaining) is None:
            process.signal(signal.SIGKILL)
            if await wait_for_exit(process, SIGKILL_WAIT_SECONDS) is None:
                raise ProcessError(
                    f"{process.name}: still running {SIGKILL_WAIT_SECONDS:g}s after SIGKILL"
                )

    def finished(self, container: ContainerRecord) -> None:
        """Record that the container's main process is gone (taking the rest of the container
        along): terminated, ``Completed`` on exit code 0, else ``Error``."""
        process = container.process
        assert process is not None
        code = process.returncode
        process.stop(grace=0)
        if code is None:
            code = process.returncode if process.returncode is not None else -signal.SIGKILL
        exit_code = code if code >= 0 else 128 - code
        container.state = ContainerState(
            "terminated",
            "Completed" if exit_code == 0 else "Error",
            exit_code,
            container.state.started_at,
            self._clock(),
        )
        container.last_state = container.state

    async def _run_pre_stop(
        self, action: PreStopAction, target: ProbeTarget, timeout: float
    ) -> None:
        if isinstance(action, SleepAction):
            await asyncio.sleep(min(action.seconds, timeout))  # the hook's behaviour is to sleep
            return
        began = self._clock()
        result = await execute(action, target, timeout)
        # An HTTP answer of any status completes the hook; only a hook that errored before the
        # grace period ran out is a failure (the kubelet keeps the hook's output out of events).
        failed = not result.success and result.status is None
        if failed and self._clock() - began < timeout:
            self._events.warning(self.ref, ev.FAILED_PRE_STOP_HOOK, "PreStopHook failed")
