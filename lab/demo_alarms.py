"""The demo site's warning rules, dependencies, duty roster and flood plan (预案), derived
from what the bench runs, so that ``cchub demo`` raises real alarms when a simulator is
told to fail (a UPS on battery, a device that stops answering, a water-leak reading)."""

from __future__ import annotations

from typing import Any

from devices.capabilities import Ups, capabilities_of
from lab.bench import Bench
from lab.sitefile import device_entries

DUTY_ROLE = "duty"
LEAK_METRIC = "water.leak"
FLOOD_PLAN = "flood-response"


def _ups_ids(bench: Bench) -> list[str]:
    return [e["id"] for e in device_entries(bench) if Ups in capabilities_of(e["type"])]


def _gateways(bench: Bench) -> list[Any]:
    return [sim for sim in bench.sims.values() if getattr(sim, "site_trunk", None) is not None]


def duty_roster(bench: Bench, number: str) -> list[dict[str, Any]]:
    """Endpoints with the ``duty`` role behind the bench's PSTN gateway: the duty officer
    on ``number`` (answers) and, when the gateway has a busy number, a deputy on it."""
    roster: list[dict[str, Any]] = [
        {"id": "demo-mobile", "name": "Duty officer (mobile)", "routes": [number],
         "roles": [DUTY_ROLE]},
    ]  # fmt: skip
    for sim in _gateways(bench):
        numbers = getattr(sim.state, "numbers", {})
        busy = [n for n, b in numbers.items() if getattr(b, "action", "") == "busy"]
        if busy:
            roster.append(
                {"id": "demo-deputy", "name": "Deputy duty officer (line busy)",
                 "routes": [f"pstn:{busy[0]}"], "roles": [DUTY_ROLE]}
            )  # fmt: skip
            break
    return roster


def demo_alarms(bench: Bench) -> dict[str, Any]:
    """Site sections ``rules``, ``dependencies`` and ``plans`` for the bench.

    - ``ups-on-battery`` (orange): ``ups.on_battery`` of any UPS device; it impairs what
      the UPS powers (every other device), whose offline alarms are then suppressed;
    - ``ups-battery-low`` (red): charge below 30 %, clears above 40 %;
    - ``device-offline`` (yellow): a device stops answering (``device.offline``);
    - ``water-leak`` (red): a ``water.leak`` reading (HTTP push or MQTT) starts the plan
      ``flood-response``: a conference dialling the duty roster.
    """
    rules: list[dict[str, Any]] = [
        {"id": "device-offline", "event": "device.offline", "level": "yellow",
         "unreachable": True, "description": "a device stopped answering"},
        {"id": "water-leak", "metric": LEAK_METRIC, "above": 1, "level": "red",
         "plan": FLOOD_PLAN, "description": "water on the floor of a monitored room"},
    ]  # fmt: skip
    sections: dict[str, Any] = {"rules": rules}
    ups = _ups_ids(bench)
    if ups:
        rules[:0] = [
            {"id": "ups-on-battery", "metric": "ups.on_battery", "above": 1, "level": "orange",
             "impairs": True, "description": "mains failed: the UPS runs from its battery"},
            {"id": "ups-battery-low", "metric": "ups.charge_percent", "below": 30, "clear": 40,
             "unit": "%", "level": "red", "description": "UPS battery nearly empty"},
        ]  # fmt: skip
        powered = [e["id"] for e in device_entries(bench) if e["id"] not in ups]
        if powered:
            sections["dependencies"] = [{"parent": ups[0], "children": powered, "via": "power"}]
    steps: list[dict[str, Any]] = [
        {"id": "tell-consoles", "action": "notify", "text": "Water leak: flood response",
         "level": "red"},
        {"id": "bridge", "action": "create_conference", "name": "Flood response"},
    ]  # fmt: skip
    if _gateways(bench):
        steps.append(
            {"id": "call-duty", "action": "dial", "conference": "bridge", "role": DUTY_ROLE,
             "depends_on": ["bridge"]}
        )  # fmt: skip
    sections["plans"] = [{"id": FLOOD_PLAN, "name": "Flood response (防汛)", "steps": steps}]
    return sections


def alarm_hints(bench: Bench, api: str) -> list[str]:
    """Banner lines: how to make the demo raise its alarms."""
    control = bench.control_url
    lines = ["  alarms    " + f"{api}/api/v1/alarms   try:"]
    for device in _ups_ids(bench)[:1] if control else []:
        lines.append(
            f"    curl -X PATCH {control}/sims/{device}/state "
            """-d '{"output_source": "battery"}'   (UPS on battery)"""
        )
    lines.append(
        f"    curl -X POST {api}/api/v1/sensing -H 'Authorization: Bearer <engineer token>' "
        """-H 'Content-Type: application/json' -d '{"records": [{"metric": "water.leak", """
        """"source": "pump-room", "value": true, "ts": <unix seconds>, "unit": ""}]}'"""
        f"   (water leak: plan {FLOOD_PLAN})"
    )
    return lines
