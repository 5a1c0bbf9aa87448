"""The blueGreen controller of Argo Rollouts as a pure state machine.

:func:`step` is one reconciliation, like :func:`pytest_rollout.engine.canary.step`: the last
:class:`~pytest_rollout.engine.status.RolloutStatus`, the parsed Rollout, the observed pods and
AnalysisRuns and the time in; a :class:`~pytest_rollout.engine.status.Decision` out. The new
(green) ReplicaSet comes up at full size beside the active (blue) one, reachable through the
preview Service; once it is available and pre-promotion analysis (if any) succeeded, the
active Service's selector moves to it in one step, at once or after a pause (auto-promotion
off: until :func:`promote`; ``autoPromotionSeconds``: that long). Post-promotion analysis then
decides whether it becomes stable; the previous ReplicaSet is scaled down
``scaleDownDelaySeconds`` (default 30) after that. An abort points the active Service back at
the stable ReplicaSet and scales the new one down after ``abortScaleDownDelaySeconds``.

Each pass follows ``rolloutBlueGreen``: the new ReplicaSet; the preview Service; on a new
template, a reset and nothing more; the ReplicaSets (stable at full size, the new one at its
size, the others after their delay); the pause; the active Service; the AnalysisRuns; the
status.

Followed (argoproj/argo-rollouts v1.9.1): ``rollout/bluegreen.go`` (rolloutBlueGreen,
reconcileBlueGreenReplicaSets, isBlueGreenFastTracked, reconcileBlueGreenPause,
scaleDownOldReplicaSetsForBlueGreen, syncRolloutStatusBlueGreen,
calculateScaleUpPreviewCheckPoint), ``rollout/service.go`` (reconcilePreviewService,
reconcileActiveService), ``rollout/pause.go`` (CompletedBlueGreenPause,
completedPrePromotionAnalysis), ``rollout/analysis.go`` (reconcilePrePromotionAnalysisRun,
reconcilePostPromotionAnalysisRun, skipPre/PostPromotionAnalysisRun,
setPauseOrAbortForBlueGreen), ``rollout/replicaset.go`` (removeScaleDownDeadlines,
reconcileNewReplicaSet, shouldDelayScaleDownOnAbort, scaleDownDelayHelper,
isReplicaSetReferenced), ``rollout/sync.go`` (shouldFullPromote, promoteStable,
resetRolloutStatus), ``utils/replicaset`` (NewRSNewReplicas, ReadyForPause),
``utils/annotations`` (IsSaturated), ``utils/conditions/conditions.go`` (RolloutHealthy,
RolloutProgressing) and the e2e expectations of ``test/e2e/functional_test.go``
(TestBlueGreenUpdate) and ``test/e2e/bluegreen_test.go``.

Where this differs from Argo: ``spec.paused``, ``scaleDownDelayRevisionLimit``,
``antiAffinity``, ephemeral metadata, ``rollbackWindow`` and AWS target-group verification are
outside the supported subset (the parser rejects them); a Service's selector is read from the
status this engine wrote, as nothing else changes it here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pytest_rollout.engine import events as ev
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.engine.reconciler import AFTER, Counts, Reconciler
from pytest_rollout.engine.rollout_model import BlueGreenStrategy, Rollout, RolloutAnalysis
from pytest_rollout.engine.status import (
    Decision,
    Observations,
    PauseReason,
    ReplicaSetState,
    RolloutStatus,
    RunKind,
    RunStatus,
)
from pytest_rollout.errors import RolloutError


def step(
    status: RolloutStatus, rollout: Rollout, observations: Observations, now: float
) -> Decision:
    """One reconciliation of a blueGreen Rollout: what to do next, and the status after it."""
    if rollout.spec.blue_green is None:
        raise RolloutError(
            f"Rollout/{rollout.name}: the blueGreen engine drives blueGreen strategies; this "
            "Rollout uses canary"
        )
    return _BlueGreenReconciler(status, rollout, rollout.spec.blue_green, observations, now).run()


def promote(status: RolloutStatus) -> RolloutStatus:
    """``kubectl argo rollouts promote``: clear the pause conditions (the controller then sees
    its pause completed). Without a pause it changes nothing."""
    if status.pause_conditions:
        return replace(status, pause_conditions=())
    return status


class _BlueGreenReconciler(Reconciler):
    def __init__(
        self,
        status: RolloutStatus,
        rollout: Rollout,
        blue_green: BlueGreenStrategy,
        observations: Observations,
        now: float,
    ) -> None:
        super().__init__(status, rollout, observations, now)
        self.strategy = blue_green
        self.active_selector = status.active_selector
        self.preview_selector = status.preview_selector
        self.pre_run = self.observed(status.pre_promotion_run)
        self.post_run = self.observed(status.post_promotion_run)
        # Set once the new ReplicaSet exists: its size and deadline as the pass found them
        # (Argo reads them from the object it listed, not from its own patches).
        self.found: ReplicaSetState = ReplicaSetState(self.desired_hash, "", 0, 0)

    # -- the pass --

    def run(self) -> Decision:
        self.check_paused_conditions()
        self.ensure_new_replica_set()
        new = self.new_rs
        assert new is not None
        self.found = new
        self._reconcile_preview_service()
        if self.prev.current_pod_hash and self.prev.current_pod_hash != self.desired_hash:
            return self._finish(reset=True)
        self._reconcile_replica_sets()
        self._reconcile_pause()
        self._reconcile_active_service()
        self._reconcile_analysis_runs()
        return self._finish(reset=False)

    # -- what the pass reads --

    @property
    def halted(self) -> bool:
        """``haltProgress``: an Inconclusive analysis paused the Rollout."""
        return self.pause_condition(PauseReason.INCONCLUSIVE_ANALYSIS) is not None

    @property
    def rollback_within_delay(self) -> bool:
        """The new ReplicaSet still carries a scale-down deadline: a rollback to a previous
        ReplicaSet within ``scaleDownDelaySeconds``, or one aborted moments ago."""
        return self.found.scale_down_at is not None

    def _new_replicas(self) -> int:
        """``NewRSNewReplicas``: full size, or ``previewReplicaCount`` until promotion."""
        count = self.strategy.preview_replica_count
        if count is None:
            return self.replicas
        prev = self.prev
        active = self.sets.get(prev.active_selector) if prev.active_selector else None
        if active is None or active.pod_hash == self.desired_hash or prev.promote_full:
            return self.replicas
        if self.desired_hash != prev.current_pod_hash:
            return count
        if not prev.pause_conditions and prev.scale_up_preview_checkpoint:
            return self.replicas
        return count

    def _ready_for_pause(self) -> bool:
        """``ReadyForPause``: the new ReplicaSet is at its size and all of it available."""
        target = self._new_replicas()
        return self.found.replicas == target and self.pods(self.desired_hash).available == target

    def _saturated(self) -> bool:
        """``IsSaturated``: the new ReplicaSet runs ``spec.replicas`` available pods."""
        return (
            self.found.replicas == self.replicas
            and self.pods(self.desired_hash).available == self.replicas
        )

    def _fast_tracked(self) -> bool:
        """``isBlueGreenFastTracked``: no pause and no analysis before the switch."""
        return (
            self.rollback_within_delay
            or self.prev.promote_full
            or not self.active_selector
            or self.active_selector == self.desired_hash
        )

    def _completed_pre_promotion_analysis(self) -> bool:
        if self.strategy.pre_promotion_analysis is None:
            return True
        run = self.pre_run
        return run is not None and run.phase == AnalysisPhase.SUCCESSFUL

    def _completed_pause(self) -> bool:
        """``CompletedBlueGreenPause``: promoted by hand, or ``autoPromotionSeconds`` passed."""
        prev = self.prev
        condition = self.pause_condition(PauseReason.BLUE_GREEN_PAUSE)
        if self.pause.added:
            return False
        if prev.scale_up_preview_checkpoint:
            return True
        if self.strategy.auto_promotion_enabled:
            seconds = self.strategy.auto_promotion_seconds
            if seconds == 0:
                return True
            return condition is not None and self.now > condition.start_time + seconds
        return prev.controller_pause and condition is None

    # -- Services --

    def _reconcile_preview_service(self) -> None:
        """The preview Service follows the new ReplicaSet from the pass that creates it."""
        if self.halted:
            return
        self.preview_selector = self.switch_service(
            self.strategy.preview_service, self.preview_selector, self.desired_hash
        )

    def _reconcile_active_service(self) -> None:
        """``reconcileActiveService``: switch once the new ReplicaSet is saturated and either
        fast-tracked or past its pause and pre-promotion analysis; back to stable on abort."""
        if self.halted or not self._ready_for_pause() or not self._saturated():
            return
        target = self.active_selector
        if self._fast_tracked():
            target = self.desired_hash
        if self._completed_pause() and self._completed_pre_promotion_analysis():
            target = self.desired_hash
        if self.prev.abort:
            target = self.prev.stable_rs
        self.active_selector = self.switch_service(
            self.strategy.active_service, self.active_selector, target
        )

    # -- ReplicaSets --

    def _reconcile_replica_sets(self) -> None:
        """``reconcileBlueGreenReplicaSets``: all in one pass, unlike the canary."""
        self._remove_scale_down_deadlines()
        stable = self.stable_rs
        if stable is not None:
            # The stable ReplicaSet stays at full size for the whole update: 2x at peak.
            self.scale(stable, self.replicas)
        self._reconcile_new_replica_set()
        self._scale_down_other_replica_sets()
        self.clean_up_revision_history()

    def _delays_scale_down_on_abort(self) -> bool:
        """``shouldDelayScaleDownOnAbort``."""
        return (
            self.pause.aborted
            and self.stable_rs is not None
            and self.strategy.abort_scale_down_delay is not None
        )

    def _remove_scale_down_deadlines(self) -> None:
        keep_new = self._delays_scale_down_on_abort()
        for rs in (None if keep_new else self.new_rs, self.stable_rs):
            if rs is not None and rs.scale_down_at is not None:
                self.sets[rs.pod_hash] = replace(rs, scale_down_at=None)

    def _reconcile_new_replica_set(self) -> None:
        """``reconcileNewReplicaSet``: an aborted update keeps its pods until the abort's
        deadline, set once the stable ReplicaSet is fully available again."""
        new = self.new_rs
        assert new is not None
        target = self._new_replicas()
        delay = self.strategy.abort_scale_down_delay
        if self._delays_scale_down_on_abort() and delay is not None:
            if new.scale_down_at is None:
                stable = self.stable_rs
                if stable is not None and self.pods(stable.pod_hash).available == self.replicas:
                    deadline = self.now + delay
                    self.sets[new.pod_hash] = replace(new, scale_down_at=deadline)
                    self.wake.append(deadline)
                return
            if new.scale_down_at > self.now:
                self.wake.append(new.scale_down_at)
                return
            target = 0
        self.scale(new, target, keep_deadline=self._delays_scale_down_on_abort())

    def _scale_down_other_replica_sets(self) -> None:
        """``scaleDownOldReplicaSetsForBlueGreen`` with ``scaleDownDelayHelper``: a previous
        ReplicaSet is kept at full size until ``scaleDownDelaySeconds`` after it stopped being
        referenced, then scaled to 0. ``scaleDownDelaySeconds: 0`` sets no deadline, so such a
        ReplicaSet is never scaled down, as in Argo (argoproj/argo-rollouts#1992)."""
        others = [rs for rs in self.other_replica_sets() if rs.replicas > 0]
        if not others or self.halted:
            return
        post = self.strategy.post_promotion_analysis
        if (
            post is not None
            and self.strategy.scale_down_delay_seconds is None
            and not self._skip_post_promotion(self.post_run)
            and (self.post_run is None or self.post_run.phase != AnalysisPhase.SUCCESSFUL)
        ):
            return
        for rs in sorted(others, key=lambda item: item.revision, reverse=True):
            if self._referenced(rs):
                continue
            if rs.scale_down_at is None:
                delay = self.strategy.scale_down_delay
                if delay > 0:
                    deadline = self.now + delay
                    self.sets[rs.pod_hash] = replace(rs, scale_down_at=deadline)
                    self.wake.append(deadline)
                continue
            if rs.scale_down_at > self.now:
                self.wake.append(rs.scale_down_at)
                self.scale(rs, self.replicas)
            else:
                self.scale(rs, 0)

    def _referenced(self, rs: ReplicaSetState) -> bool:
        """``isReplicaSetReferenced``: still the stable or current ReplicaSet, or behind a
        Service (as recorded, or as switched in this pass)."""
        prev = self.prev
        references = {
            prev.stable_rs,
            prev.current_pod_hash,
            prev.active_selector,
            prev.preview_selector,
            self.active_selector,
            self.preview_selector,
        }
        return rs.pod_hash in references

    # -- pause --

    def _reconcile_pause(self) -> None:
        """``reconcileBlueGreenPause``: pause before the switch when the controller manages
        the pause, after pre-promotion analysis passed; resume after autoPromotionSeconds."""
        if self.prev.abort or not self._ready_for_pause() or self.halted:
            return
        if (
            self._fast_tracked()
            or self.prev.scale_up_preview_checkpoint
            or not self.strategy.controller_pauses
        ):
            self.pause.removed.append(PauseReason.BLUE_GREEN_PAUSE)
            return
        if not self._completed_pre_promotion_analysis():
            return
        condition = self.pause_condition(PauseReason.BLUE_GREEN_PAUSE)
        if condition is None:
            # Gone while the controller paused: the user promoted; do not pause again.
            if not self.prev.controller_pause:
                self.pause.added.append(PauseReason.BLUE_GREEN_PAUSE)
            return
        if self._completed_pause():
            self.pause.removed.append(PauseReason.BLUE_GREEN_PAUSE)
        elif self.strategy.auto_promotion_seconds > 0:
            self.wake.append(condition.start_time + self.strategy.auto_promotion_seconds + AFTER)

    # -- analysis --

    def _reconcile_analysis_runs(self) -> None:
        prev = self.prev
        pre, post = self.pre_run, self.post_run
        skip = (
            self.pause.aborted
            or prev.promote_full
            or self.rollback_within_delay
            or not prev.stable_rs
        )
        if skip:
            self.terminate(pre)
            self.terminate(post)
            return
        pre = self._reconcile_run(
            pre,
            RunKind.PRE_PROMOTION,
            self.strategy.pre_promotion_analysis,
            self._skip_pre_promotion,
        )
        self._judge(pre, "pre-promotion")
        post = self._reconcile_run(
            post,
            RunKind.POST_PROMOTION,
            self.strategy.post_promotion_analysis,
            self._skip_post_promotion,
        )
        self._judge(post, "post-promotion")
        self.emit_run_change(prev.post_promotion_run, post)
        self.emit_run_change(prev.pre_promotion_run, pre)
        self.pre_run, self.post_run = pre, post

    def _reconcile_run(
        self,
        run: RunStatus | None,
        kind: RunKind,
        analysis: RolloutAnalysis | None,
        skip: Callable[[RunStatus | None], bool],
    ) -> RunStatus | None:
        """``reconcilePre/PostPromotionAnalysisRun``."""
        if analysis is None:
            self.terminate(run)
            return None
        if skip(run):
            self.terminate(run)
            return run
        if self.halted:
            return run
        if self.needs_new_run(run):
            infix = "pre" if kind == RunKind.PRE_PROMOTION else "post"
            return self.create_run(kind, analysis, infix)
        return run

    def _skip_pre_promotion(self, run: RunStatus | None) -> bool:
        """``skipPrePromotionAnalysisRun``: only while the active Service still selects the
        previous ReplicaSet, and (to start) once the new one is at its preview size."""
        prev = self.prev
        active = prev.active_selector
        if prev.stable_rs == self.desired_hash or not active or active == self.desired_hash:
            return True
        if run is not None:
            return False
        count = self.strategy.preview_replica_count
        if count is not None:
            return self.found.replicas != count or self.pods(self.desired_hash).available != count
        return not self._saturated()

    def _skip_post_promotion(self, run: RunStatus | None) -> bool:
        """``skipPostPromotionAnalysisRun``: only once the active Service selects the new
        ReplicaSet (as recorded in the status: the pass after the switch)."""
        prev = self.prev
        if prev.stable_rs == self.desired_hash or prev.active_selector != self.desired_hash:
            return True
        if run is not None:
            return False
        return not self._saturated()

    def _judge(self, run: RunStatus | None, label: str) -> None:
        """``setPauseOrAbortForBlueGreen``."""
        if run is None:
            return
        if run.phase == AnalysisPhase.INCONCLUSIVE:
            self.pause.added.append(PauseReason.INCONCLUSIVE_ANALYSIS)
        elif run.phase in (AnalysisPhase.ERROR, AnalysisPhase.FAILED):
            message = f"Blue/green {label} analysis phase error/failed"
            self.pause.add_abort(f"{message}: {run.message}" if run.message else message)

    # -- status --

    def _should_full_promote(self) -> str:
        """``shouldFullPromote`` for blueGreen: why the new ReplicaSet becomes stable now."""
        if self.stable_rs is None or not self.active_selector:
            return "Initial deploy"
        if self.active_selector != self.desired_hash:
            return ""
        if self.prev.promote_full:
            return "Full promotion requested"
        if self.pause.aborted:
            return ""
        if self.strategy.post_promotion_analysis is not None:
            if self.rollback_within_delay:
                return f"Rollback to '{self.found.name}' within scaleDownDelay"
            if self.post_run is None or self.post_run.phase != AnalysisPhase.SUCCESSFUL:
                return ""
        return "Completed blue-green update"

    def _scale_up_preview_checkpoint(self) -> bool:
        """``calculateScaleUpPreviewCheckPoint``: flips once, when the preview is up at its
        count, pre-promotion analysis passed and the pause completed."""
        count = self.strategy.preview_replica_count
        if count is None:
            return False
        if self.prev.scale_up_preview_checkpoint:
            return True
        if not self._completed_pre_promotion_analysis() or not self._completed_pause():
            return False
        return self.pods(self.desired_hash).available == count

    def _finish(self, *, reset: bool) -> Decision:
        prev = self.prev
        stable = prev.stable_rs
        promote_full = self.desired_hash != stable and prev.promote_full
        pre, post = self.pre_run, self.post_run
        checkpoint = prev.scale_up_preview_checkpoint
        if reset:
            # resetRolloutStatus: a new template starts over.
            self.pause.clear()
            self.pause.remove_abort()
            promote_full = checkpoint = False
            self.terminate(pre)
            self.terminate(post)
            pre = post = None
        if prev.promote_full:
            self.pause.clear()
            self.pause.remove_abort()
        why = self._should_full_promote()
        if why:
            self.pause.clear()
            self.pause.remove_abort()
            promote_full = checkpoint = False
            if stable != self.desired_hash:
                stable = self.desired_hash
                self.emit(ev.rollout_completed(self.revision, stable, why, at=self.now))
        elif not reset:
            checkpoint = self._scale_up_preview_checkpoint()
        counts = self._counts()
        active = self.sets.get(self.active_selector) if self.active_selector else None
        status = self.base_status(
            stable_rs=stable,
            promote_full=promote_full,
            pre_promotion_run=pre,
            post_promotion_run=post,
            scale_up_preview_checkpoint=checkpoint,
            active_selector=self.active_selector,
            preview_selector=self.preview_selector,
            available=active is not None and self._saturated_rs(active),
            replicas=counts.replicas,
            updated_replicas=counts.updated,
            ready_replicas=counts.ready,
            available_replicas=counts.available,
        )
        selectors_moved = (
            self.active_selector != prev.active_selector
            or self.preview_selector != prev.preview_selector
        )
        return self.decide(
            self.calculate_conditions(
                status,
                healthy=self._healthy(counts),
                progressed=self.made_progress(counts, selectors_moved),
                not_completed_revision=self.revision,
            )
        )

    def _saturated_rs(self, rs: ReplicaSetState) -> bool:
        return rs.replicas == self.replicas and self.pods(rs.pod_hash).available == self.replicas

    def _counts(self) -> Counts:
        """``calculateBaseStatus`` and ``syncRolloutStatusBlueGreen``: pods of every
        ReplicaSet; ready and available pods of the active one (of all while there is none)."""
        pods = [self.pods(pod_hash) for pod_hash in self.sets]
        active = self.sets.get(self.active_selector) if self.active_selector else None
        if active is not None:
            ready = self.pods(active.pod_hash).ready
            available = self.pods(active.pod_hash).available
        else:
            ready = sum(p.ready for p in pods)
            available = sum(p.available for p in pods)
        return Counts(
            replicas=sum(p.replicas for p in pods),
            updated=self.pods(self.desired_hash).replicas,
            ready=ready,
            available=available,
        )

    def _healthy(self, counts: Counts) -> bool:
        """``RolloutHealthy`` for blueGreen: the new ReplicaSet available behind the active
        Service (and the preview Service). A previous ReplicaSet may still wait out its
        scale-down delay."""
        preview_done = (
            not self.strategy.preview_service or self.preview_selector == self.desired_hash
        )
        return (
            counts.updated == self.replicas
            and counts.available == self.replicas
            and self.active_selector == self.desired_hash
            and preview_done
        )
