"""``lrsearch worker --pack K``: up to K compatible trials of one study trained fused.

A pack starts from a trial claimed as usual. If its model can be packed
(:func:`~lrsearch.workers.packing.pack_key` is not ``None``), the worker
claims up to K-1 more trials of the study with the parameters the key depends
on (``batch_size``, ``optimizer``) fixed to the first trial's values (WAITING
trials join only if their own fixed values agree). A trial that leaves early
(pruned, diverged) frees its slot for a refill at the next epoch boundary,
sampled freely: one of the same shape joins, one of another shape ends the
refills and starts the next pack once this one has drained, so that the
sampler keeps choosing the shapes. Once every trial has left, the pack is over.

Every trial reports, asks its pruner and is recorded exactly as an unpacked
one (:func:`~lrsearch.workers._loop_support.record_trial`). One heartbeat
thread beats for all of them. On a stop every trial held is handed back; a
kill leaves them all to the stale sweep. CUDA out of memory in a pack of n > 1
restarts its trials from epoch 0 in packs of n // 2 (epochs already reported
are not reported again); a trial alone that runs out of memory ends PRUNED
with reason ``oom``, as unpacked.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, Any, cast

import optuna
import torch
from optuna.trial import TrialState

from lrsearch import storage
from lrsearch.search_space import StudyDefinition, sample_config
from lrsearch.workers._errors import TrainingInterrupted
from lrsearch.workers._loop_support import (
    DB_ERRORS,
    PatientTrial,
    TrialEnd,
    WorkerStats,
    hand_back,
    infeasible_record,
    is_cuda_oom,
    record_trial,
    short_error,
)
from lrsearch.workers._pack_auto import pack_limit
from lrsearch.workers._pack_parts import PackHeartbeat, Slot, resolved_definition, study_task
from lrsearch.workers.packing import PackedRun, SlotEpoch, pack_key
from lrsearch.workers.tasks import Task
from lrsearch.workers.training import train_seed

if TYPE_CHECKING:
    from lrsearch.workers.loop import Worker

log = logging.getLogger("lrsearch.workers.loop")

# The sampled parameters that pack_key depends on: fixed for every trial of a pack.
PACK_PARAMS = ("batch_size", "optimizer")

DIVERGED = "diverged: the training loss became NaN or infinite"

# Reporting failed: the trial was failed as stale elsewhere, or the storage is gone.
_ABANDON: tuple[type[BaseException], ...] = (
    optuna.exceptions.UpdateFinishedTrialError,
    *DB_ERRORS,
)


class _Pack:
    """The trials one worker trains fused for one study, until none is left to claim."""

    def __init__(
        self,
        worker: Worker,
        backend: storage.Backend,
        record: storage.StudyRecord,
        study: optuna.Study,
        stats: WorkerStats,
        beat: PackHeartbeat,
    ) -> None:
        self.w, self.backend, self.record, self.study = worker, backend, record, study
        self.stats, self.beat = stats, beat
        self.cap = 1  # set for each pack by start()
        self.definition: StudyDefinition = record.definition
        self.task: Task | None = None
        self.key: tuple[Any, ...] | None = None
        self.fixed: dict[str, Any] = {}
        self.run: PackedRun | None = None
        self.active: dict[int, Slot] = {}  # in the PackedRun, by trial number
        self.waiting: list[Slot] = []  # claimed, to join when a slot frees (after an OOM)
        self.alone: list[optuna.Trial] = []  # claimed, to run unpacked afterwards
        self.next: Slot | None = None  # claimed, of another shape: starts the next pack
        self.initial = True  # filling the pack for its first epoch: shape params fixed
        self.exhausted = False  # no more trials to claim for this pack
        self.shown: tuple[int, ...] = ()

    # -- membership ------------------------------------------------------------

    def hold(self, trial: optuna.Trial) -> None:
        self.beat.add(trial._trial_id)
        self.w.packed.append((self.record, self.study, trial))

    def let_go(self, trial: optuna.Trial) -> None:
        self.beat.discard(trial._trial_id)
        self.w.packed[:] = [h for h in self.w.packed if h[2] is not trial]

    def held(self) -> int:
        return len(self.active) + len(self.waiting) + len(self.alone) + (self.next is not None)

    def start(self, first: Slot) -> None:
        """A new pack around ``first`` (the previous one, if any, has drained)."""
        assert self.task is not None
        self.release()
        self.key = pack_key(first.config, self.task)
        self.fixed = {k: first.trial.params[k] for k in PACK_PARAMS if k in first.trial.params}
        limit = pack_limit(self.w.options.pack, self.key, self.w.device)
        self.cap = self.w.pack_caps.get(self.key, limit)
        self.initial, self.exhausted = True, False
        self.waiting = [first]

    # -- the first trial -------------------------------------------------------

    def prepare(self, trial: optuna.Trial) -> Slot | None:
        """Sample the first trial; ``None`` when it must train alone (``auto``: or should)."""
        try:
            self.definition = resolved_definition(self.w, self.backend, self.record)
            slot = self.sample(trial)
            self.task = study_task(self.w, self.definition)
            key = pack_key(slot.config, self.task)
            packable = pack_limit(self.w.options.pack, key, self.w.device) > 1
        except DB_ERRORS:
            raise
        except Exception as exc:
            # The unpacked path repeats the step that failed and records the failure.
            log.debug("trial %d trains alone: %s", trial.number, short_error(exc))
            return None
        return slot if packable else None

    def sample(self, trial: optuna.Trial) -> Slot:
        config = self.w._patiently(lambda: sample_config(trial, self.definition), "sample")
        retry_of = int(trial.user_attrs.get("retry_of", trial.number))
        return Slot(trial, config, train_seed(self.definition.data_seed, retry_of))

    # -- claiming --------------------------------------------------------------

    def claim(self) -> Slot | None:
        """Another trial of the study for the pack, sampled; or ``None``.

        While the pack is first filled, the trial's shape parameters are fixed
        to the pack's. A refill is sampled freely, so that the sampler keeps
        choosing batch sizes and optimizers: one of another shape ends the
        refills and starts the next pack once this one has drained.
        """
        w = self.w
        limit = w.options.max_trials
        if (
            self.exhausted
            or w.stopping
            or (limit is not None and self.stats.trials + self.held() >= limit)
        ):
            return None
        try:
            trial = storage.claim_trial(
                self.backend,
                self.study,
                worker=w.worker_id,
                device=w.device_label,
                fixed=self.fixed if self.initial else None,
            )
        except Exception as exc:
            log.warning("study %s: no more trials for the pack: %s", self.record.name, exc)
            trial = None
        if trial is None:
            self.exhausted = True
            return None
        self.hold(trial)
        try:
            slot = self.sample(trial)
            key = None if self.task is None else pack_key(slot.config, self.task)
        except DB_ERRORS:
            raise
        except Exception:
            slot, key = None, None
        if key == self.key and slot is not None:
            return slot
        self.exhausted = True
        if key is None or slot is None or self.initial:
            # Not expected (the same task; the key's parameters fixed): train it alone.
            log.warning("trial %d does not fit a pack; it trains alone", trial.number)
            self.alone.append(trial)
        else:
            self.next = slot
        return None

    def fill(self) -> None:
        """Free slots: first trials waiting since an OOM, then new claims."""
        while len(self.active) < self.cap:
            slot = self.waiting.pop(0) if self.waiting else self.claim()
            if slot is None:
                break
            if self.run is None:
                assert self.task is not None
                self.run = PackedRun(
                    self.task,
                    data_seed=self.definition.data_seed,
                    device=self.w.device,
                    objective=self.definition.objective.metric,
                    direction=self.definition.direction,
                    bf16=self.w.options.bf16,
                )
            slot.lr_curve, slot.metrics = [], []
            try:
                self.run.add(slot.trial.number, slot.config, slot.seed)
            except ValueError:
                self.alone.append(slot.trial)
                continue
            self.active[slot.trial.number] = slot
        numbers = tuple(self.active)
        if numbers and numbers != self.shown:
            self.shown = numbers
            log.info(
                "study %s pack of %d (K=%d) on %s: trials %s",
                self.record.name,
                len(numbers),
                self.cap,
                self.w._where(),
                ", ".join(f"#{n}" for n in numbers),
            )

    # -- training --------------------------------------------------------------

    def train(self) -> None:
        """Epochs until no trial is left in the pack (or the worker stops)."""
        while True:
            self.drop_lost()
            if self.w.stopping:
                self.hand_back_all()
                return
            if self.initial or self.active or self.waiting:
                # Once every trial has left, the pack is over: the next one is
                # claimed afresh, its shape chosen by the sampler again.
                self.fill()
            self.initial = False
            if not self.active or self.run is None:
                return
            oom: str | None = None
            try:
                results = self.run.run_epoch(stop_requested=lambda: self.w.stopping)
            except TrainingInterrupted:
                continue  # the stop is handled at the top
            except DB_ERRORS:
                raise
            except Exception as exc:
                if not is_cuda_oom(exc):
                    log.exception("pack of %s failed", self.record.name)
                    self.fail_all(f"{type(exc).__name__}: {short_error(exc)}")
                    return
                oom = short_error(exc)
            if oom is not None:
                # After the except block: the exception and its frames are gone.
                self.out_of_memory(oom)
                continue
            for number, epoch in results.items():
                slot = self.active.get(cast(int, number))
                if slot is not None:
                    self.after_epoch(slot, epoch)

    def after_epoch(self, slot: Slot, epoch: SlotEpoch) -> None:
        slot.lr_curve.append(epoch.lr)
        if epoch.diverged or epoch.metrics is None:
            self.end(slot, TrialState.FAIL, None, DIVERGED)
            return
        slot.metrics.append(epoch.metrics)
        value = epoch.metrics[self.definition.objective.metric]
        patient = PatientTrial(slot.trial, self.w._patiently)
        try:
            if epoch.epoch > slot.reported:
                patient.report(value, epoch.epoch)
                slot.reported = epoch.epoch
                if patient.should_prune():
                    self.end(slot, TrialState.PRUNED, None, None)
                    return
        except _ABANDON as exc:
            # Failed as stale elsewhere, or the storage is gone while stopping:
            # the trial is left to whoever retries it.
            log.warning("trial %d abandoned: %s", slot.trial.number, short_error(exc))
            self.leave(slot)
            return
        if epoch.finished:
            self.end(slot, TrialState.COMPLETE, value, None)

    def leave(self, slot: Slot) -> None:
        number = slot.trial.number
        if self.run is not None:
            self.run.remove(number)
        self.active.pop(number, None)
        self.let_go(slot.trial)

    def end(
        self,
        slot: Slot,
        state: TrialState,
        value: float | None,
        error: str | None,
        *,
        oom: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record a trial that left the pack, exactly as an unpacked one."""
        self.leave(slot)
        epochs = len(slot.lr_curve)
        attrs = {"lr_curve": slot.lr_curve, "metrics": slot.metrics, "epochs_run": epochs}
        attrs.update(extra or {})
        outcome = record_trial(
            self.backend,
            self.record,
            self.study,
            slot.trial,
            TrialEnd(state, value, error, attrs, epochs, oom, slot.started),
            patient=self.w._patiently,
            where=self.w._where(),
        )
        self.w._tally(self.stats, outcome)

    def out_of_memory(self, error: str) -> None:
        """Release the pack; restart its trials in packs half the size, or end a lone one."""
        slots = list(self.active.values())
        self.release(out_of_memory=True)
        if len(slots) == 1:
            slot = slots[0]
            record = infeasible_record(
                slot.trial.params.get("batch_size"), self.w.device, self.w.device_label
            )
            log.warning("trial %d: CUDA out of memory on %s", slot.trial.number, self.w._where())
            self.end(
                slot,
                TrialState.PRUNED,
                None,
                f"oom: {error}",
                oom=True,
                extra={"infeasible": record},
            )
            self.exhausted = True  # this batch size does not fit even alone
            return
        self.cap = self.w.pack_caps[self.key] = max(1, len(slots) // 2)
        log.warning(
            "study %s: CUDA out of memory in a pack of %d on %s; packs of %d from now on",
            self.record.name,
            len(slots),
            self.w._where(),
            self.cap,
        )
        self.waiting = slots + self.waiting

    def release(self, *, out_of_memory: bool = False) -> None:
        if self.run is not None:
            self.run.release()
        self.run = None
        self.active.clear()
        if out_of_memory:
            # As after an unpacked trial's OOM: whatever the exception still
            # referenced is collected before the allocator's cache is returned.
            gc.collect()
            torch.cuda.empty_cache()

    def drop_lost(self) -> None:
        lost = self.beat.lost
        for slot in [s for s in self.active.values() if s.trial._trial_id in lost]:
            log.warning("trial %d was failed as stale elsewhere; abandoning it", slot.trial.number)
            self.leave(slot)
        self.waiting = [s for s in self.waiting if s.trial._trial_id not in lost]
        self.alone = [t for t in self.alone if t._trial_id not in lost]
        if self.next is not None and self.next.trial._trial_id in lost:
            self.next = None
        self.w.packed[:] = [h for h in self.w.packed if h[2]._trial_id not in lost]

    def hand_back_all(self, reason: str = "interrupted: worker stopped") -> None:
        trials = [s.trial for s in (*self.active.values(), *self.waiting)] + self.alone
        trials += [self.next.trial] if self.next is not None else []
        self.next = None
        if trials:
            log.warning(
                "pack of %s interrupted; handing back trials %s",
                self.record.name,
                ", ".join(f"#{t.number}" for t in trials),
            )
        self.release()
        self.waiting, self.alone = [], []
        for trial in trials:
            hand_back(self.backend, self.study, trial, self.record, reason=reason)
            self.let_go(trial)

    def fail_all(self, error: str) -> None:
        """A pack that raised: its trials fail with the reason; waiting ones train alone."""
        slots = list(self.active.values())
        self.release()
        for slot in slots:
            self.end(slot, TrialState.FAIL, None, error)
        self.alone += [s.trial for s in self.waiting]
        self.waiting = []


def run_pack(
    worker: Worker,
    backend: storage.Backend,
    record: storage.StudyRecord,
    study: optuna.Study,
    trial: optuna.Trial,
    stats: WorkerStats,
) -> None:
    """Train ``trial`` and up to ``pack - 1`` compatible trials of its study fused.

    Each finished trial is tallied in ``stats`` (and shown through the
    worker's ``on_trial``) as it ends. A trial that cannot be packed, and any
    claimed trial that turned out incompatible, is trained alone, unpacked.
    """

    def sweep() -> None:
        worker._sweep_stale(backend, record, study)

    beat = PackHeartbeat(backend, worker.options.heartbeat_s, sweep, worker._note_db_error)
    pack = _Pack(worker, backend, record, study, stats, beat)
    with beat:
        pack.hold(trial)
        try:
            first = pack.prepare(trial)
            if first is None:
                pack.alone.append(trial)
            while first is not None:
                pack.start(first)
                pack.train()  # when stopping, hands back all it holds, ``next`` too
                first, pack.next = (None, None) if worker.stopping else (pack.next, None)
            pack.release()
        except DB_ERRORS as exc:
            # Only when stopping during an outage: the trials go stale and are retried.
            log.warning("storage lost during a pack of %s: %s", record.name, short_error(exc))
            pack.release()
            for held in list(worker.packed):
                pack.let_go(held[2])
            return
        except Exception as exc:
            # Never let a pack take the worker down: its trials are retried.
            log.exception("pack of %s failed", record.name)
            pack.hand_back_all(reason=f"interrupted: {type(exc).__name__}: {short_error(exc)}")
            return
        while pack.alone:
            alone = pack.alone.pop(0)
            if worker.stopping:
                hand_back(backend, study, alone, record, reason="interrupted: worker stopped")
            pack.let_go(alone)
            if not worker.stopping and alone._trial_id not in beat.lost:
                worker._tally(stats, worker._run_trial(backend, record, study, alone))
