"""The agent keeps the alarm table's rows between requests (a walk of many alarms does not
rebuild and sort them per GETNEXT) yet every alarm change shows in the very next request."""

from __future__ import annotations

import time
from pathlib import Path

from hub.config import SiteConfig
from hub.runtime import Hub
from hub.snmp.mib import ALARM_TABLE, MibView
from tests.hub.sitefile import site_dict

NAME, STATE, COUNT = 2, 6, 9  # cchubAlarmName, cchubAlarmState, cchubAlarmCount


def column(view: MibView, sub: int) -> dict[int, object]:
    prefix = (*ALARM_TABLE.entry, sub)
    return {
        oid[len(prefix)]: value[1] for oid, value in view.items() if oid[: len(prefix)] == prefix
    }


async def test_alarm_rows_follow_every_change(tmp_path: Path) -> None:
    data = site_dict(tmp_path)
    data["snmp"] = {"host": "127.0.0.1", "port": 0, "community": "public"}
    data["rules"] = [{"id": "hot", "metric": "room.temp", "above": 35, "clear": 30}]
    async with Hub(SiteConfig.model_validate(data)) as hub:
        assert hub.snmp is not None
        core = hub.alarms.core
        assert column(hub.snmp.view(), NAME) == {}
        core.submit("room.temp", "room-1", 41, time.time())
        assert column(hub.snmp.view(), NAME) == {1: b"hot@room-1"}
        assert column(hub.snmp.view(), STATE) == {1: 2}  # activeUnack
        core.submit("room.temp", "room-2", 42, time.time())  # at once after a read
        assert column(hub.snmp.view(), NAME) == {1: b"hot@room-1", 2: b"hot@room-2"}
        core.submit("room.temp", "room-1", 20, time.time())
        assert column(hub.snmp.view(), STATE) == {1: 4, 2: 2}  # rtnUnack, activeUnack
        await hub.alarms.ack("hot@room-1", "duty-1", "fan back")
        assert column(hub.snmp.view(), NAME) == {2: b"hot@room-2"}  # normal: not listed
        core.submit("room.temp", "room-1", 45, time.time())  # a new episode, same row
        assert column(hub.snmp.view(), COUNT) == {1: 1, 2: 1}
