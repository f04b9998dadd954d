"""Site files written by the bench: ``devices:`` pointing at simulators or real hardware."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from lab.bench import Bench


def device_entries(bench: Bench) -> list[dict[str, Any]]:
    """One site-file device per bench device that is up (crashed simulators are left out)."""
    out = []
    for name, device in bench.spec.devices.items():
        sim = bench.sims.get(name)
        if device.simulated and (sim is None or sim.status.value != "running"):
            continue
        if hasattr(sim, "site_trunk"):
            continue  # a SIP gateway: the hub reaches it as a trunk (trunk_entries)
        driver = device.driver
        entry: dict[str, Any] = {"id": name, "type": driver.type}
        if driver.name:
            entry["name"] = driver.name
        entry["transport"] = bench.site_transport(name)
        if driver.poll_interval is not None:
            entry["poll_interval"] = driver.poll_interval
        if driver.timeout is not None:
            entry["timeout"] = driver.timeout
        if driver.options:
            entry["options"] = dict(driver.options)
        out.append(entry)
    return out


def trunk_entries(bench: Bench) -> list[dict[str, Any]]:
    """One site-file trunk per running SIP gateway simulator (``site_trunk``)."""
    out = []
    for name, sim in bench.sims.items():
        site_trunk = getattr(sim, "site_trunk", None)
        if site_trunk is not None and sim.status.value == "running":
            out.append(site_trunk(name))
    return out


def site_document(bench: Bench, **sections: Any) -> dict[str, Any]:
    """A whole site: ``sections`` (``hub``, ``users``, ``sip``...) plus the bench's devices
    (and its SIP gateways as trunks)."""
    trunks = trunk_entries(bench)
    extra = {"trunks": [*sections.pop("trunks", []), *trunks]} if trunks else {}
    return {**sections, **extra, "devices": device_entries(bench)}


def write_site(path: Path | str, document: dict[str, Any], *, header: str = "") -> Path:
    """Write atomically; the site may name ``${ENV}`` secrets, never their values."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    text = comment + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def describe_transport(transport: dict[str, Any]) -> str:
    """``tcp 127.0.0.1:4001``, ``serial /dev/pts/3 9600 baud``, ``snmp v2c 127.0.0.1:1161``."""
    kind = transport.get("kind")
    if kind == "serial":
        return f"serial {transport['port']} {transport.get('baudrate', 9600)} baud"
    if kind == "snmp":
        return f"snmp v{transport.get('version', '2c')} {transport['host']}:{transport['port']}"
    if kind in ("tcp", "udp"):
        return f"{kind} {transport['host']}:{transport['port']}"
    return str(transport.get("url", transport))
