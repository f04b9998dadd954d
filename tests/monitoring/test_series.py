"""Recent series and minute roll-ups: bounded rings, one roll-up per series and minute, the
store's roll-up table (migration v3), and a running hub whose site file names an SNMP
target, the trap listener and an MQTT feed, seen through /api/v1/metrics and /metrics."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from hub.config import SiteConfig
from hub.runtime import Hub
from hub.store import SqliteStore
from lab.mosquitto import Mosquitto
from lab.snmpd import NetSnmpAgent
from monitoring.samples import Sample, freeze_labels
from monitoring.series import Rollup, SeriesStore
from monitoring.targets import SeriesPolicy
from tests.hub.sitefile import auth, site_dict
from tests.monitoring.producers import eventually, run

T0 = 1_800_000_000.0  # a minute boundary


def sample(value: float, ts: float, unit: str = "V", **labels: str) -> Sample:
    return Sample("ups.input_voltage", "ups-1", value, ts, unit, freeze_labels(labels))


def test_points_are_bounded_and_minutes_roll_up() -> None:
    closed: list[Rollup] = []
    store = SeriesStore(SeriesPolicy(points=10, max_series=10), closed.extend, clock=lambda: T0)
    for i in range(120):  # two minutes, one point every second
        assert store.add(sample(220.0 + i % 10, T0 + i))
    [series] = store.find("ups.*")
    assert len(series.points) == 10 and series.last is not None and series.last.ts == T0 + 119
    assert closed == []  # handed over on flush
    store.flush(T0 + 119)
    assert [(r.minute, r.min, r.avg, r.max, r.count) for r in closed] == [
        (T0, 220.0, 224.5, 229.0, 60)
    ]
    store.flush(T0 + 120)
    assert [(r.minute, r.count, r.unit) for r in closed[1:]] == [(T0 + 60, 60, "V")]
    assert store.flush(T0 + 500) == []  # nothing open any more


def test_units_order_and_capacity() -> None:
    store = SeriesStore(SeriesPolicy(points=10, max_series=10))
    assert store.add(sample(230, T0))
    assert store.conflict(sample(0.23, T0 + 1, unit="kV")) == (
        "unit 'kV' differs from the series' unit 'V'"
    )
    assert "older than the series' last" in str(store.conflict(sample(229, T0 - 1)))
    assert store.conflict(sample(229, T0 + 1)) is None
    for i in range(9):
        assert store.add(sample(1, T0, phase=str(i)))
    assert not store.add(sample(1, T0, phase="10"))  # an 11th series: refused, counted
    assert store.stats.refused_new_series == 1
    assert [s.labels for s in store.find(labels={"phase": "[12]"})] == [
        {"phase": "1"},
        {"phase": "2"},
    ]


async def test_rollups_survive_in_the_store(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "cchub.db")
    await store.open()
    try:
        rollups = [
            Rollup(
                "tank.pressure", "pump-2", (("tank", "t1"),), "bar", T0 + 60 * i, 1.0, 2.0, 3.0, 6
            )
            for i in range(3)
        ]
        store.save_rollups(rollups)
        store.save_rollups(
            [Rollup("tank.pressure", "pump-2", (("tank", "t1"),), "bar", T0, 0.5, 0.5, 0.5, 1)]
        )
        await store.flush()
        # the minutes that overlap [since, until]
        got = await store.load_rollups("tank.pressure", source="pump-2", since=T0 + 90)
        assert [r.minute for r in got] == [T0 + 60, T0 + 120]
        first = await store.load_rollups("tank.pressure", until=T0)
        assert first[0].labels == (("tank", "t1"),) and first[0].count == 1  # replaced
        store.prune_rollups(T0 + 100)
        await store.flush()
        assert [r.minute for r in await store.load_rollups("tank.pressure")] == [T0 + 120]
    finally:
        await store.close()


@pytest.mark.slow
async def test_a_hub_with_targets_traps_and_mqtt(tmp_path: Path) -> None:
    async with (
        NetSnmpAgent(overrides={"1.3.6.1.4.1.99999.1.1.0": ("integer", 427)}) as agent,
        Mosquitto() as broker,
    ):
        site = {
            **site_dict(tmp_path),
            "rules": [
                {"id": "pressure", "metric": "tank.pressure", "above": 4, "unit": "bar",
                 "level": "orange"},
                {"id": "ups-trap", "event": "trap.upsTrapOnBattery", "level": "orange"},
                {"id": "leak", "metric": "water.leak", "above": 1, "level": "red"},
            ],
            "monitoring": {
                "targets": [
                    {"kind": "snmp", "id": "plant-plc", "host": "127.0.0.1", "port": agent.port,
                     "community": "public", "interval": 0.3, "mibs": ["if-mib"],
                     "objects": [{"oid": "1.3.6.1.4.1.99999.1.1.0", "metric": "tank.pressure",
                                  "scale": 0.01, "unit": "bar"}]},
                ],
                "traps": {"host": "127.0.0.1", "port": 0},
                "mqtt": [{"host": broker.host, "port": broker.port,
                          "subscriptions": [{"topic": "leak/+", "metric": "water.leak",
                                             "source": "{1}", "field": "leak"}]}],
            },
        }  # fmt: skip
        async with (
            Hub(SiteConfig.model_validate(site)) as hub,
            httpx.AsyncClient(base_url=hub.api_url, timeout=10, headers=auth("ops")) as http,
        ):

            async def alarm_rules() -> set[str]:
                return {a["rule"] for a in (await http.get("/api/v1/alarms")).json()}

            async def pressure_alarm() -> bool:  # the PLC's pressure: 4.27 bar > 4
                return "pressure" in await alarm_rules()

            await eventually(pressure_alarm, within=15)
            assert hub.monitoring.traps is not None
            env = {**os.environ, "MIBS": ""}
            await run("snmptrap", "-v2c", "-c", "public", f"127.0.0.1:{hub.monitoring.traps.port}",
                      "", ".1.3.6.1.2.1.33.2.1", env=env)  # fmt: skip
            await eventually(lambda: hub.monitoring.mqtt[0].stats.connected, within=10)
            await broker.publish("leak/b2-pump-room", '{"leak": true}', qos=1)

            async def all_three() -> bool:
                return await alarm_rules() == {"pressure", "ups-trap", "leak"}

            await eventually(all_three, within=15)
            listed = (await http.get("/api/v1/metrics", params={"source": "plant-plc"})).json()
            names = {s["metric"] for s in listed}
            assert {"tank.pressure", "if.oper_status", "target.up"} <= names
            lo = (await http.get(
                "/api/v1/metrics/if.oper_status", params={"label": "ifDescr=lo"}
            )).json()  # fmt: skip
            assert [s["labels"]["ifDescr"] for s in lo["series"]] == ["lo"]
            assert lo["series"][0]["points"][-1][1] == 1.0
            bad = await http.get("/api/v1/metrics/if.oper_status", params={"label": "nolabel"})
            assert bad.status_code == 422
            missing = await http.get("/api/v1/metrics/no.such.metric")
            assert missing.status_code == 404
            text = (await http.get("/metrics")).text
            assert 'cchub_poll_total{kind="snmp",result="ok",target="plant-plc"}' in text
            assert 'cchub_poll_up{kind="snmp",target="plant-plc"} 1.0' in text
            assert 'cchub_traps_received_total{version="2c"} 1.0' in text
            assert (
                'cchub_metric_value{labels="",metric="tank.pressure",source="plant-plc",'
                'unit="bar"} 4.27' in text
            )
            assert "cchub_ingest_queue_depth" in text
            health = (await http.get("/api/v1/health")).json()
            monitoring = next(s for s in health["subsystems"] if s["name"] == "monitoring")
            assert (
                monitoring["state"] == "up"
                and "1 target(s), 0 not answering" in monitoring["detail"]
            )
            # the minutes so far, rolled up into the store
            hub.monitoring.series.flush(everything=True)
            rolled = (await http.get(
                "/api/v1/metrics/tank.pressure", params={"resolution": "1m", "source": "plant-plc"}
            )).json()  # fmt: skip
            assert rolled["rollups"] and rolled["rollups"][0]["max"] == pytest.approx(4.27)
