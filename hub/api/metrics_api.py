"""Metric routes: the recent series (in memory) and their minute roll-ups (store), and the
HTTP push endpoint for sensing data (传感数据接入), validated record by record."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from hub.api.deps import ANY_ROLE, get_hub, require
from hub.auth import Principal
from hub.config import Role
from hub.errors import NotFound
from hub.runtime import Hub
from monitoring.mqtt import parse_timestamp
from monitoring.series import Series

router = APIRouter(tags=["metrics"])

HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(require(*ANY_ROLE))]
Pusher = Annotated[Principal, Depends(require(Role.PLATFORM, Role.ENGINEER))]
LabelQuery = Annotated[
    list[str], Query(description="label filter 'name=glob', repeatable", examples=["ifIndex=1"])
]
CHANNEL = "push"
REQUIRED = ("metric", "source", "value", "ts", "unit")


class SeriesOut(BaseModel):
    metric: str
    source: str
    labels: dict[str, str]
    unit: str
    points: int = Field(description="recent points kept in memory")
    last_ts: float | None
    last_value: float | None


class PointsOut(BaseModel):
    source: str
    labels: dict[str, str]
    unit: str
    points: list[tuple[float, float]] = Field(description="[ts, value], oldest first")


class RollupOut(BaseModel):
    source: str
    labels: dict[str, str]
    unit: str
    minute: float
    min: float
    avg: float
    max: float
    count: int


class MetricOut(BaseModel):
    metric: str
    resolution: Literal["raw", "1m"]
    series: list[PointsOut] = []
    rollups: list[RollupOut] = []


class SensingIn(BaseModel):
    """A batch of readings; each record: metric, source, value (number, bool or null),
    ts (UNIX seconds or ISO 8601 with a zone), unit (may be ""), labels (optional)."""

    records: list[dict[str, Any]] = Field(min_length=1)


class RecordResult(BaseModel):
    index: int
    accepted: bool
    reason: str | None = None
    detail: str | None = None


class SensingOut(BaseModel):
    accepted: int
    rejected: int
    results: list[RecordResult]


def _labels(filters: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filters:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise HTTPException(422, f"label filter {item!r} must be 'name=value'")
        out[name] = value
    return out


def _summary(series: Series) -> SeriesOut:
    last = series.last
    return SeriesOut(
        metric=series.key.metric,
        source=series.key.source,
        labels=series.labels,
        unit=series.unit,
        points=len(series.points),
        last_ts=last.ts if last else None,
        last_value=last.value if last else None,
    )


@router.get("/api/v1/metrics", response_model=list[SeriesOut])
async def list_metrics(
    hub: HubDep,
    _: Reader,
    name: Annotated[str | None, Query(description="metric name or glob")] = None,
    source: Annotated[str | None, Query(description="source name or glob")] = None,
    label: LabelQuery = [],  # noqa: B006 - FastAPI reads the default, never mutates it
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> list[SeriesOut]:
    """Every series seen recently (sorted by metric, source, labels)."""
    found = hub.monitoring.series.find(name, source, _labels(label))
    return [_summary(s) for s in found[:limit]]


@router.get("/api/v1/metrics/{name}", response_model=MetricOut)
async def get_metric(
    name: str,
    hub: HubDep,
    _: Reader,
    source: Annotated[str | None, Query(description="source name or glob")] = None,
    label: LabelQuery = [],  # noqa: B006
    since: Annotated[float | None, Query(description="UNIX seconds")] = None,
    until: Annotated[float | None, Query(description="UNIX seconds")] = None,
    resolution: Annotated[
        Literal["raw", "1m"], Query(description="raw: recent points; 1m: minute roll-ups")
    ] = "raw",
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> MetricOut:
    """One metric's points (from memory) or its minute roll-ups (from the store)."""
    if since is not None and until is not None and since > until:
        raise HTTPException(422, "'since' is after 'until'")
    labels = _labels(label)
    if resolution == "raw":
        found = hub.monitoring.series.find(name, source, labels)
        if not found:
            raise NotFound(f"no recent series of metric {name!r} matches")
        series = []
        for s in found:
            points = s.window(since, until)[-limit:]
            series.append(
                PointsOut(
                    source=s.key.source,
                    labels=s.labels,
                    unit=s.unit,
                    points=[(p.ts, p.value) for p in points],
                )
            )
        return MetricOut(metric=name, resolution="raw", series=series)
    hub.monitoring.series.flush()  # minutes that are over, into the store first
    await hub.store.flush()
    exact = source if source is not None and not any(c in source for c in "*?[") else None
    rollups = await hub.store.load_rollups(
        name, source=exact, since=since, until=until, limit=limit
    )
    out = []
    for r in rollups:
        have = dict(r.labels)
        if labels and not all(have.get(k) == v for k, v in labels.items()):
            continue
        out.append(
            RollupOut(
                source=r.source,
                labels=have,
                unit=r.unit,
                minute=r.minute,
                min=r.min,
                avg=r.avg,
                max=r.max,
                count=r.count,
            )
        )
    return MetricOut(metric=name, resolution="1m", rollups=out)


@router.post("/api/v1/sensing", response_model=SensingOut)
async def push_sensing(
    request: Request,
    hub: HubDep,
    _: Pusher,
    body: Annotated[
        SensingIn,
        Body(
            examples=[
                {
                    "records": [
                        {
                            "metric": "tank.pressure",
                            "source": "pump-room-2",
                            "value": 3.2,
                            "ts": "2026-11-01T08:00:00+08:00",
                            "unit": "bar",
                            "labels": {"tank": "t1"},
                        }
                    ]
                }
            ]
        ),
    ],
) -> SensingOut:
    """Accept or refuse each record on its own; a refusal says why."""
    policy = hub.site.monitoring.push
    if len(body.records) > policy.max_records:
        raise HTTPException(
            413, f"{len(body.records)} records; at most {policy.max_records} per call"
        )
    intake = hub.monitoring.intake
    results: list[RecordResult] = []
    now = intake.now()
    for index, record in enumerate(body.records):
        verdict = _check(record, now, policy.max_age)
        if verdict is not None:
            reason, detail = verdict
            intake.refuse(CHANNEL, str(record.get("source", "?")), reason, detail)
            results.append(RecordResult(index=index, accepted=False, reason=reason, detail=detail))
            continue
        outcome = intake.record(
            record["metric"],
            record["source"],
            record["value"],
            record["ts"],
            record["unit"],
            record.get("labels"),
            channel=CHANNEL,
        )
        results.append(
            RecordResult(index=index, accepted=True)
            if outcome.accepted
            else RecordResult(
                index=index, accepted=False, reason=outcome.reason, detail=outcome.detail
            )
        )
    accepted = sum(1 for r in results if r.accepted)
    request.state.audit_target = "sensing"
    request.state.audit_detail = f"{accepted} accepted, {len(results) - accepted} rejected"
    return SensingOut(accepted=accepted, rejected=len(results) - accepted, results=results)


def _check(record: dict[str, Any], now: float, max_age: float) -> tuple[str, str] | None:
    """What the push contract adds to the intake's checks; rewrites an ISO ``ts`` in place."""
    unknown = sorted(set(record) - {*REQUIRED, "labels"})
    if unknown:
        return "bad_field", f"unknown field(s): {', '.join(unknown)}"
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        return "missing_field", f"missing field(s): {', '.join(missing)}"
    labels = record.get("labels")
    if labels is not None and (
        not isinstance(labels, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
    ):
        return "bad_field", "labels must map text to text"
    ts = parse_timestamp(record["ts"])
    if isinstance(ts, str):
        return "bad_timestamp", ts
    if not math.isfinite(ts) or ts < now - max_age:
        return "too_old", f"timestamp {ts:.0f} is more than {max_age:g} s in the past"
    record["ts"] = ts
    return None
