"""The warning core: samples and occurrences in, alarms out.

Rules decide each subject's condition; dependencies suppress what sits behind an impaired
parent; repeated occurrences add to one alarm's count; flapping alarms stay quiet; action
steps run while an alarm is unacknowledged; several alarms of one level on one site make
an escalated alarm. Time comes from an injectable clock and ``tick()``: nothing sleeps.
The core never raises into a producer: bad input is rejected, counted and logged once.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitoring.actions import ActionRequest, ActionResult, ActionRunner
from monitoring.alarms import (
    ANNUNCIATED,
    Alarm,
    AlarmSnapshot,
    AlarmState,
    AlarmTransition,
    Cause,
    Condition,
)
from monitoring.config import (
    ActionStep,
    AlarmPolicy,
    Dependency,
    Escalation,
    FlapPolicy,
    Rule,
    WarningLevel,
)
from monitoring.dependencies import Topology
from monitoring.errors import AlarmNotFound, IllegalTransition
from monitoring.rules import CompiledRule, SeriesState, alarm_id
from monitoring.samples import (
    Occurrence,
    OccurrenceState,
    Rejection,
    Sample,
    SampleRejected,
    SeriesKey,
    check_occurrence,
    check_sample,
)

logger = logging.getLogger(__name__)

_MAX_CACHED_SERIES = 200_000
_NOTIFY = [ActionStep(do="notify")]


class AlarmSink(Protocol):
    """Where the core reports: the hub persists and publishes each of these."""

    def transition(self, transition: AlarmTransition) -> None: ...

    def updated(self, alarm: AlarmSnapshot) -> None: ...

    def action_result(self, result: ActionResult) -> None: ...


@dataclass
class WarningStats:
    samples_ingested: int = 0
    occurrences: int = 0
    rejected: collections.Counter[Rejection] = field(default_factory=collections.Counter)
    internal_errors: int = 0

    @property
    def samples_rejected(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class AlarmFilter:
    """Which alarms: ``None`` fields match everything; ``active`` leaves out normal ones."""

    states: frozenset[AlarmState] | None = None
    levels: frozenset[WarningLevel] | None = None
    source: str | None = None
    rule: str | None = None
    active: bool = True

    def __call__(self, alarm: AlarmSnapshot) -> bool:
        if self.active and alarm.state is AlarmState.NORMAL and self.states is None:
            return False
        if self.states is not None and alarm.state not in self.states:
            return False
        if self.levels is not None and alarm.level not in self.levels:
            return False
        if self.source is not None and alarm.source != self.source:
            return False
        return self.rule is None or alarm.rule == self.rule

    @property
    def includes_normal(self) -> bool:
        """Whether a normal alarm can match (if not, only open alarms need a look)."""
        return not self.active if self.states is None else AlarmState.NORMAL in self.states


class _RejectLog:
    """Logs a source's rejections once per reason, and its recovery once."""

    def __init__(self) -> None:
        self._logged: dict[str, set[Rejection]] = {}

    def rejected(self, source: str, err: SampleRejected) -> None:
        reasons = self._logged.setdefault(source, set())
        if err.reason in reasons:
            logger.debug("[source=%s] sample rejected: %s", source, err)
            return
        reasons.add(err.reason)
        logger.warning("[source=%s] sample rejected (%s): %s", source, err.reason.value, err)

    def accepted(self, source: str) -> None:
        if self._logged and self._logged.pop(source, set()):
            logger.info("[source=%s] samples accepted again", source)


class WarningCore:
    """Evaluates rules over samples and occurrences and owns every alarm's lifecycle."""

    def __init__(
        self,
        rules: Sequence[Rule],
        policy: AlarmPolicy,
        dependencies: Sequence[Dependency] = (),
        *,
        sink: AlarmSink,
        actions: ActionRunner | None = None,
        clock: Callable[[], float] = time.time,
        source_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.policy = policy
        self._rules = {r.id: CompiledRule(r, policy.flap) for r in rules}
        self._escalations = {e.id: e for e in policy.escalations}
        self._topology = Topology(dependencies)
        self._sink = sink
        self._actions = actions
        self._clock = clock
        self._source_labels = {k: dict(v) for k, v in (source_labels or {}).items()}
        self._alarms: dict[str, Alarm] = {}
        self._open: set[str] = set()  # alarms not normal (tick looks at these only)
        self._dirty: set[str] = set()  # changed without a transition, persisted on tick
        self._matches: dict[tuple[SeriesKey, bool], list[CompiledRule]] = {}
        self._series: dict[tuple[str, SeriesKey], SeriesState] = {}
        # by alarm id: the series of rules with stale_after
        self._watched: dict[str, tuple[CompiledRule, SeriesState]] = {}
        self._by_source: dict[str, set[str]] = {}  # source -> alarm ids
        self._impairing: dict[str, set[str]] = {}  # source -> ids of impairing alarms active
        self._annunciations: collections.deque[tuple[float, str]] = collections.deque()
        self._rejects = _RejectLog()
        self.stats = WarningStats()

    # -- producers -------------------------------------------------------------------------

    def submit(
        self,
        metric: Any,
        source: Any,
        value: Any,
        ts: Any,
        unit: Any = "",
        labels: Any = None,
    ) -> bool:
        """Raw fields from a producer; False when rejected (counted, logged once per source).
        Never raises into the producer."""
        try:
            sample = check_sample(
                metric,
                source,
                value,
                ts,
                unit,
                labels,
                now=self._clock(),
                max_future_skew=self.policy.max_future_skew,
            )
        except SampleRejected as err:
            self._reject(str(source), err)
            return False
        try:
            return self._ingest(sample)
        except Exception:
            self.stats.internal_errors += 1
            logger.exception("[source=%s] evaluating %s failed", sample.source, sample.metric)
            return False

    def ingest(self, sample: Sample) -> bool:
        """One sample built by a producer (checked like raw fields); False when rejected."""
        return self.submit(
            sample.metric, sample.source, sample.value, sample.ts, sample.unit, sample.labels
        )

    def occur(self, occurrence: Occurrence) -> None:
        """One discrete event. Never raises into the producer."""
        try:
            self._occur(occurrence)
        except Exception:
            self.stats.internal_errors += 1
            logger.exception("[source=%s] evaluating %s failed", occurrence.source, occurrence.kind)

    def _reject(self, source: str, err: SampleRejected) -> None:
        self.stats.rejected[err.reason] += 1
        self._rejects.rejected(source, err)

    def _labels(self, source: str, own: Mapping[str, str]) -> dict[str, str]:
        site = self._source_labels.get(source)
        return {**own, **site} if site else dict(own)

    def _rules_for(
        self, key: SeriesKey, events: bool, labels: Mapping[str, str]
    ) -> list[CompiledRule]:
        cache_key = (key, events)
        found = self._matches.get(cache_key)
        if found is None:
            if len(self._matches) >= _MAX_CACHED_SERIES:
                self._matches.clear()
            found = [
                r
                for r in self._rules.values()
                if r.for_events == events and r.matches(key.metric, key.source, labels)
            ]
            self._matches[cache_key] = found
        return found

    def _ingest(self, sample: Sample) -> bool:
        now = self._clock()
        key = sample.series
        labels = self._labels(sample.source, sample.labels)
        rules = self._rules_for(key, False, labels)
        for rule in rules:
            expected = rule.config.unit
            if expected is not None and sample.unit != expected:
                self._reject(
                    sample.source,
                    SampleRejected(
                        Rejection.WRONG_UNIT,
                        f"{sample.metric}: unit {sample.unit!r} does not match rule "
                        f"{rule.id!r} (expects {expected!r})",
                    ),
                )
                return False
            state = self._series.get((rule.id, key))
            if state is not None and sample.ts < state.last_ts:
                self._reject(
                    sample.source,
                    SampleRejected(
                        Rejection.OUT_OF_ORDER,
                        f"{sample.metric}: timestamp {sample.ts:.3f} is older than the last "
                        f"one ({state.last_ts:.3f})",
                    ),
                )
                return False
        self.stats.samples_ingested += 1
        self._rejects.accepted(sample.source)
        for rule in rules:
            self._evaluate(rule, sample, key, labels, now)
        return True

    def _evaluate(
        self, rule: CompiledRule, sample: Sample, key: SeriesKey, labels: dict[str, str], now: float
    ) -> None:
        state = self._series.get((rule.id, key))
        if state is None:
            aid = rule.alarm_id_for(sample.source, sample.metric, dict(sample.labels))
            state = SeriesState(aid, key, labels, last_seen=now)
            self._series[(rule.id, key)] = state
            if rule.config.stale_after is not None:
                self._watched[aid] = (rule, state)
                if aid not in self._alarms:
                    # kept (normal) so that a restart knows which series to expect
                    self._new_alarm(rule, aid, sample.source, sample.metric, labels)
                    self._dirty.add(aid)
        alarm = self._alarms.get(state.alarm_id)
        active = alarm is not None and alarm.condition is Condition.ACTIVE
        verdict = rule.evaluate(state, sample, active)
        if sample.value is not None:
            state.last_seen = now
        if verdict.condition is None:
            return
        if verdict.condition is Condition.NORMAL:
            if alarm is not None:
                self._clear(alarm, rule, now, verdict.message, verdict.value)
            return
        alarm = alarm or self._new_alarm(rule, state.alarm_id, sample.source, sample.metric, labels)
        self._activate(alarm, rule, now, verdict.condition, verdict.message, verdict.value)

    def _occur(self, occ: Occurrence) -> None:
        now = self._clock()
        try:
            check_occurrence(occ)
        except SampleRejected as err:
            self._reject(str(occ.source), err)
            return
        self.stats.occurrences += 1
        key = SeriesKey(occ.kind, occ.source, tuple(occ.labels.items()))
        labels = self._labels(occ.source, occ.labels)
        for rule in self._rules_for(key, True, labels):
            aid = rule.alarm_id_for(occ.source, occ.kind, dict(occ.labels))
            alarm = self._alarms.get(aid)
            message = occ.message or f"{occ.kind} from {occ.source}"
            if occ.state is OccurrenceState.CLEAR:
                if alarm is not None:
                    self._clear(alarm, rule, now, message, None)
                continue
            alarm = alarm or self._new_alarm(rule, aid, occ.source, occ.kind, labels)
            window = self.policy.dedupe_window
            # a one-shot event (a trap) has no "clear": its condition lapses when quiet
            lapse = rule.config.clear_after
            if occ.state is OccurrenceState.PULSE and lapse is None:
                lapse = window
            alarm.lapses_after = lapse
            self._activate(alarm, rule, now, Condition.ACTIVE, message, None, dedupe=window)

    # -- alarms ----------------------------------------------------------------------------

    def _new_alarm(
        self, rule: CompiledRule, aid: str, source: str, subject: str, labels: Mapping[str, str]
    ) -> Alarm:
        snapshot = AlarmSnapshot(
            id=aid,
            rule=rule.id,
            source=source,
            subject=subject,
            level=rule.config.level,
            state=AlarmState.NORMAL,
            condition=Condition.NORMAL,
            labels=dict(labels),
            latch=rule.config.latch,
        )
        return self._add(Alarm(snapshot, self._on_transition))

    def _add(self, alarm: Alarm) -> Alarm:
        self._alarms[alarm.id] = alarm
        self._by_source.setdefault(alarm.source, set()).add(alarm.id)
        return alarm

    def _activate(
        self,
        alarm: Alarm,
        rule: CompiledRule | None,
        now: float,
        condition: Condition,
        message: str,
        value: float | None,
        *,
        dedupe: float | None = None,
    ) -> None:
        if rule is not None and rule.config.unreachable and not alarm.condition_active:
            alarm.suppressed_by = self._suppressor(alarm.source)
        was_active = alarm.condition_active
        alarm.activate(now, condition, message, value, dedupe_window=dedupe)
        self._dirty.add(alarm.id)
        if not was_active:
            self._condition_changed(alarm, rule, now)

    def _clear(
        self, alarm: Alarm, rule: CompiledRule | None, now: float, message: str, value: float | None
    ) -> None:
        was_active = alarm.condition_active
        alarm.clear(now, message, value)
        if was_active:
            self._dirty.add(alarm.id)
            self._condition_changed(alarm, rule, now)

    def _condition_changed(self, alarm: Alarm, rule: CompiledRule | None, now: float) -> None:
        flap = rule.flap if rule is not None else self.policy.flap
        self._check_flapping(alarm, flap, now)
        if rule is not None and rule.config.impairs:
            self._update_impairment(alarm, now)

    def _check_flapping(self, alarm: Alarm, flap: FlapPolicy, now: float) -> None:
        horizon = now - flap.window
        changes = [t for t in alarm.changes if t > horizon]
        alarm.changes = changes[-(flap.changes + 1) :]
        flapping = len(changes) >= flap.changes
        if flapping != alarm.flapping:
            alarm.flapping = flapping
            self._dirty.add(alarm.id)
            logger.warning(
                "[alarm=%s] %s (%d changes in %g s)",
                alarm.id,
                "flapping: notifications held" if flapping else "no longer flapping",
                len(changes),
                flap.window,
            )
            if not flapping:
                self._run_due_steps(alarm, now)

    # -- dependencies ----------------------------------------------------------------------

    def _suppressor(self, source: str) -> str | None:
        """The nearest ancestor of ``source`` that is impaired (None: not suppressed)."""
        for ancestor in self._topology.ancestors(source):
            if self._impairing.get(ancestor):
                return ancestor
        return None

    def _update_impairment(self, alarm: Alarm, now: float) -> None:
        ids = self._impairing.setdefault(alarm.source, set())
        before = bool(ids)
        if alarm.condition_active:
            ids.add(alarm.id)
        else:
            ids.discard(alarm.id)
        if bool(ids) == before:
            return
        logger.info(
            "[source=%s] %s: re-checking what sits behind it",
            alarm.source,
            "impaired" if ids else "recovered",
        )
        for child in sorted(self._topology.descendants(alarm.source)):
            for other in [self._alarms[i] for i in sorted(self._by_source.get(child, ()))]:
                rule = self._rules.get(other.rule)
                if rule is None or not rule.config.unreachable:
                    continue
                by = self._suppressor(child)
                if by is not None and other.condition_active and other.suppressed_by is None:
                    other.suppress(now, by)
                elif by is None and other.suppressed_by is not None:
                    other.unsuppress(now)
                elif by is not None and other.suppressed_by is not None:
                    other.suppressed_by = by

    # -- transitions -----------------------------------------------------------------------

    def _on_transition(self, transition: AlarmTransition) -> None:
        alarm = self._alarms[transition.alarm.id]
        if transition.new is AlarmState.NORMAL:
            self._open.discard(alarm.id)
        else:
            self._open.add(alarm.id)
        self._dirty.discard(alarm.id)  # the transition carries the latest snapshot
        try:
            self._sink.transition(transition)
        except Exception:
            logger.exception("[alarm=%s] recording a transition failed", alarm.id)
        if transition.new is AlarmState.ACTIVE_UNACK and alarm.annunciated_ts == transition.ts:
            self._annunciated(alarm, transition.ts)
        if transition.new in ANNUNCIATED:
            self._run_due_steps(alarm, transition.ts)

    def _steps(self, alarm: Alarm) -> list[ActionStep]:
        rule = self._rules.get(alarm.rule)
        if rule is not None and rule.steps is not None:
            return rule.steps
        return self.policy.actions.get(alarm.level, _NOTIFY)

    def _run_due_steps(self, alarm: Alarm, now: float) -> None:
        if alarm.state not in ANNUNCIATED or alarm.flapping or alarm.annunciated_ts is None:
            return
        steps = self._steps(alarm)
        while alarm.next_step < len(steps):
            step = steps[alarm.next_step]
            if now < alarm.annunciated_ts + step.after:
                return
            index = alarm.next_step
            alarm.next_step += 1
            self._dirty.add(alarm.id)
            request = ActionRequest(alarm.snapshot(), step, index, now)
            if self._actions is None:
                self._action_result(ActionResult(request, False, "no action runner", now))
            else:
                self._actions.submit(request)

    def _action_result(self, result: ActionResult) -> None:
        try:
            self._sink.action_result(result)
        except Exception:
            logger.exception("recording an action result failed")

    # -- escalation by count ---------------------------------------------------------------

    def _annunciated(self, alarm: Alarm, now: float) -> None:
        if not self._escalations:
            return
        self._annunciations.append((now, alarm.id))
        self._evaluate_escalations(now)

    def _evaluate_escalations(self, now: float) -> None:
        longest = max(e.within for e in self._escalations.values())
        while self._annunciations and self._annunciations[0][0] < now - longest:
            self._annunciations.popleft()
        for esc in self._escalations.values():
            groups: dict[str, set[str]] = {}
            for ts, aid in self._annunciations:
                alarm = self._alarms.get(aid)
                if ts < now - esc.within or alarm is None or alarm.level is not esc.level:
                    continue
                if alarm.rule == esc.id:
                    continue
                group = alarm.labels.get(esc.by, "") if esc.by else "all"
                if esc.by and not group:
                    continue
                groups.setdefault(group, set()).add(aid)
            for group, members in groups.items():
                if len(members) >= esc.count:
                    self._escalate(esc, group, members, now)
            for alarm in [self._alarms[i] for i in sorted(self._open) if i in self._alarms]:
                if alarm.rule != esc.id:
                    continue
                group = alarm.source
                if alarm.condition_active and len(groups.get(group, ())) < esc.count:
                    why = f"fewer than {esc.count} {esc.level} alarms"
                    self._clear(alarm, None, now, why, None)

    def _escalate(self, esc: Escalation, group: str, members: set[str], now: float) -> None:
        aid = alarm_id(esc.id, group, None, {})
        alarm = self._alarms.get(aid)
        message = (
            f"{len(members)} {esc.level} alarms within {esc.within:g} s"
            f"{f' on {esc.by} {group}' if esc.by else ''}: {', '.join(sorted(members))}"
        )
        if alarm is None:
            labels = {esc.by: group} if esc.by else {}
            alarm = Alarm(
                AlarmSnapshot(
                    id=aid,
                    rule=esc.id,
                    source=group,
                    subject="escalation",
                    level=esc.to,
                    state=AlarmState.NORMAL,
                    condition=Condition.NORMAL,
                    labels=labels,
                ),
                self._on_transition,
            )
            self._add(alarm)
        if alarm.condition_active:
            if alarm.message != message:
                alarm.message = message
                self._dirty.add(aid)
            return
        self._activate(alarm, None, now, Condition.ACTIVE, message, float(len(members)))

    # -- time ------------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance time: staleness, lapsed one-shot events, shelf expiry, due steps,
        flapping decay, escalation windows; then persist what changed quietly."""
        now = self._clock()
        try:
            self._tick(now)
        except Exception:
            self.stats.internal_errors += 1
            logger.exception("warning core tick failed")
        self.flush()

    def _tick(self, now: float) -> None:
        for aid, (watched, state) in list(self._watched.items()):
            stale_after = watched.config.stale_after
            silent = now - state.last_seen
            if stale_after is None or silent <= stale_after:
                continue
            alarm = self._alarms.get(aid)
            if alarm is not None and alarm.condition is Condition.NO_DATA:
                continue
            key = state.key
            if alarm is None:
                alarm = self._new_alarm(watched, aid, key.source, key.metric, state.labels)
            state.breaches = 0
            message = f"no data for {key.metric} from {key.source} for {silent:.0f} s"
            self._activate(alarm, watched, now, Condition.NO_DATA, message, None)
        for aid in list(self._open):
            alarm = self._alarms.get(aid)
            if alarm is None:
                continue
            rule = self._rules.get(alarm.rule)
            if (
                alarm.state is AlarmState.SHELVED
                and alarm.shelved_until is not None
                and now >= alarm.shelved_until
            ):
                alarm.expire_shelf(now)
            quiet, last = alarm.lapses_after, alarm.last_activation_ts
            if alarm.condition_active and quiet is not None and last is not None:
                silent = now - last
                if silent >= quiet:
                    self._clear(alarm, rule, now, f"quiet for {silent:.0f} s", None)
            if alarm.flapping:
                self._check_flapping(alarm, rule.flap if rule else self.policy.flap, now)
            self._run_due_steps(alarm, now)
        if self._escalations:
            self._evaluate_escalations(now)

    def flush(self) -> None:
        """Hand every quietly changed alarm (count, message, flapping) to the sink."""
        dirty, self._dirty = self._dirty, set()
        for aid in sorted(dirty):
            alarm = self._alarms.get(aid)
            if alarm is None:
                continue
            try:
                self._sink.updated(alarm.snapshot())
            except Exception:
                logger.exception("[alarm=%s] recording an update failed", aid)

    # -- people ----------------------------------------------------------------------------

    def _get(self, aid: str) -> Alarm:
        alarm = self._alarms.get(aid)
        if alarm is None:
            raise AlarmNotFound(f"no alarm {aid!r}")
        return alarm

    def ack(self, aid: str, actor: str, comment: str = "") -> AlarmSnapshot:
        alarm = self._get(aid)
        alarm.ack(self._clock(), actor, comment)
        return alarm.snapshot()

    def ack_many(
        self, selected: AlarmFilter | Iterable[str], actor: str, comment: str = ""
    ) -> tuple[list[AlarmSnapshot], list[tuple[str, str]]]:
        """Acknowledge every matching alarm that can be; (acknowledged, [(id, why not)])."""
        if isinstance(selected, AlarmFilter):
            ids = [a.id for a in self._alarms.values() if selected(a.snapshot())]
        else:
            ids = list(dict.fromkeys(selected))
        done: list[AlarmSnapshot] = []
        skipped: list[tuple[str, str]] = []
        now = self._clock()
        for aid in sorted(ids):
            alarm = self._alarms.get(aid)
            if alarm is None:
                skipped.append((aid, "no such alarm"))
                continue
            try:
                alarm.ack(now, actor, comment)
            except IllegalTransition as err:
                skipped.append((aid, str(err)))
                continue
            done.append(alarm.snapshot())
        return done, skipped

    def shelve(self, aid: str, duration: float, actor: str, reason: str) -> AlarmSnapshot:
        if not 0 < duration <= self.policy.max_shelve:
            raise IllegalTransition(
                aid,
                "",
                Cause.SHELVE.value,
                f"shelve duration must be in (0, {self.policy.max_shelve:g}] s, not {duration:g}",
            )
        alarm = self._get(aid)
        now = self._clock()
        alarm.shelve(now, now + duration, actor, reason)
        return alarm.snapshot()

    def unshelve(self, aid: str, actor: str) -> AlarmSnapshot:
        alarm = self._get(aid)
        alarm.unshelve(self._clock(), actor)
        return alarm.snapshot()

    def reset(self, aid: str, actor: str, comment: str = "") -> AlarmSnapshot:
        alarm = self._get(aid)
        alarm.reset(self._clock(), actor, comment)
        return alarm.snapshot()

    def forget(self, before: float) -> list[str]:
        """Drop the alarms that are normal (cleared and acknowledged) and unchanged since
        ``before``; return their ids for the store to delete. Alarms that watch a series
        for staleness stay (they say which series to expect after a restart)."""
        gone = [
            aid
            for aid, alarm in self._alarms.items()
            if alarm.state is AlarmState.NORMAL
            and alarm.condition is Condition.NORMAL
            and alarm.updated_ts < before
            and aid not in self._watched
            and aid not in self._open
            and aid not in self._dirty
        ]
        for aid in gone:
            alarm = self._alarms.pop(aid)
            ids = self._by_source.get(alarm.source)
            if ids is not None:
                ids.discard(aid)
                if not ids:
                    del self._by_source[alarm.source]
        return gone

    # -- reading and restoring -------------------------------------------------------------

    def get(self, aid: str) -> AlarmSnapshot:
        return self._get(aid).snapshot()

    def alarms(self, selected: AlarmFilter | None = None) -> list[AlarmSnapshot]:
        chosen = selected or AlarmFilter()
        pool = (
            self._alarms.values()
            if chosen.includes_normal
            else [a for aid in self._open if (a := self._alarms.get(aid)) is not None]
        )
        out = [s for s in (a.snapshot() for a in pool) if chosen(s)]
        out.sort(key=lambda s: (-s.level.rank, -s.raised_ts, s.id))
        return out

    def counts(self) -> collections.Counter[tuple[WarningLevel, AlarmState]]:
        """Alarms that are not normal, by (level, state)."""
        return collections.Counter(
            (a.level, a.state) for aid in self._open if (a := self._alarms.get(aid)) is not None
        )

    def restore(self, snapshots: Iterable[AlarmSnapshot]) -> int:
        """Take back the alarms persisted before a restart (call before any input).

        Conditions stay as they were until the next sample says otherwise; series with
        ``stale_after`` start their silence count now. An alarm whose rule is gone from
        the site file returns to normal (its condition can no longer be evaluated).
        """
        now = self._clock()
        retired: list[Alarm] = []
        annunciations: list[tuple[float, str]] = []
        for snap in snapshots:
            alarm = self._add(Alarm(snap, self._on_transition))
            if alarm.state is not AlarmState.NORMAL:
                self._open.add(alarm.id)
                if alarm.annunciated_ts is not None:
                    annunciations.append((alarm.annunciated_ts, alarm.id))
            rule = self._rules.get(alarm.rule)
            if rule is None:
                if alarm.rule not in self._escalations and alarm.condition_active:
                    retired.append(alarm)
                continue
            if rule.config.impairs and alarm.condition_active:
                self._impairing.setdefault(alarm.source, set()).add(alarm.id)
            if rule.config.stale_after is not None:
                # until the series speaks again, its silence counts from now
                key = SeriesKey(alarm.subject, alarm.source)
                self._watched[alarm.id] = (rule, SeriesState(alarm.id, key, alarm.labels, now))
        self._annunciations = collections.deque(sorted(annunciations))
        for alarm in retired:
            self._clear(alarm, None, now, f"rule {alarm.rule!r} is no longer configured", None)
        return len(self._alarms)
