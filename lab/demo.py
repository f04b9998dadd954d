"""``cchub demo``: the default bench and the hub in one process, with a banner of URLs and tokens.

Writes ``var/demo/site.yaml`` (tokens as ``${CCHUB_DEMO_TOKEN_<ROLE>}``) and ``var/demo/demo.env``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.capabilities import Display, Matrix, Ptz, capabilities_of
from devices.config import DeviceConfig
from devices.scenes import SceneConfig, check_scenes
from hub.config import Role, load_site
from hub.errors import ConfigError
from lab.bench import Bench
from lab.benchfile import load_bench
from lab.demo_alarms import alarm_hints, demo_alarms, duty_roster
from lab.demo_conference import (
    conference_endpoints,
    conference_hints,
    conference_section,
    write_baresip_config,
)
from lab.sitefile import device_entries, site_document, write_site

logger = logging.getLogger(__name__)

DEFAULT_BENCH = Path(__file__).resolve().parent / "benches" / "default.yaml"
DEMO_SIP_PASSWORD = "cchub-demo-sip"
DEMO_NUMBER = "pstn:+8613800138000"


@dataclass(frozen=True)
class DemoPaths:
    site: Path
    env: Path
    baresip: Path | None = None  # a baresip config registering as the demo SIP user


def token_variable(role: Role) -> str:
    return f"CCHUB_DEMO_TOKEN_{role.value.upper()}"


def new_tokens() -> dict[Role, str]:
    """A fresh random token per role for this demo run."""
    return {role: secrets.token_urlsafe(24) for role in Role}


def demo_site(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """The demo's site document; tokens appear only as ``${VAR}`` references."""
    sections: dict[str, Any] = {
        "hub": {
            "name": "cchub-demo",
            "data_dir": str(args.dir),
            "api": {"host": args.host, "port": args.api_port},
        },
        "users": [
            {
                "name": f"demo-{role.value}",
                "role": role.value,
                "token": f"${{{token_variable(role)}}}",
            }
            for role in Role
        ],
        # MD5 challenges only: Debian's baresip 1.0 gives up on a SHA-256 one
        "sip": {"host": args.host, "port": args.sip_port, "digest_algorithms": ["MD5"]},
    }
    # a demo SIP user: a softphone registers as demo-dispatcher (a demo, not a secret)
    for user in sections["users"]:
        if user["role"] == Role.DISPATCHER.value:
            user["sip_password"] = DEMO_SIP_PASSWORD
    if any(getattr(sim, "site_trunk", None) for sim in bench.sims.values()):
        sections["endpoints"] = duty_roster(bench, DEMO_NUMBER) + conference_endpoints(bench)
    sections["conferences"] = conference_section()  # room ops: dial 8000, PIN 4321
    # the hub's own SNMP agent: v2c community "public", read-only (a demo, not a secret)
    sections["snmp"] = {"host": args.host, "port": args.snmp_port, "community": "public"}
    scenes = demo_scenes(bench)
    if scenes:
        sections["scenes"] = scenes
    sections.update(demo_alarms(bench))  # rules, dependencies, the flood plan
    return site_document(bench, **sections)


def demo_scenes(bench: Bench) -> list[dict[str, Any]]:
    """A scene (一键场景) over what the bench has: incident feeds on every matrix's first two
    outputs (together), each camera to its first preset, the display to another input."""
    steps: list[dict[str, Any]] = []
    entries = device_entries(bench)
    for entry in entries:
        device, caps = entry["id"], capabilities_of(entry["type"])
        sim = bench.sims.get(device)
        state = sim.snapshot() if sim is not None else {}
        if Matrix in caps:
            steps += [
                {
                    "device": device,
                    "command": "route",
                    "input": source,
                    "output": output,
                    "parallel_group": "matrices",
                }
                for source, output in ((3, 1), (4, 2))
            ]
        elif Ptz in caps and state.get("presets"):
            preset = min(int(p) for p in state["presets"])
            steps.append({"device": device, "command": "preset_recall", "preset": preset})
        elif Display in caps:
            other = [i for i in state.get("inputs", []) if i != state.get("input")]
            if other:
                steps.append({"device": device, "command": "input", "input": other[0]})
    # matrices first: their group must be contiguous
    steps.sort(key=lambda step: "parallel_group" not in step)
    if not steps:
        return []
    scene = {"id": "incident-wall", "name": "Incident feeds on the wall", "steps": steps}
    # leave out what a device would refuse (a declarative wall whose profile maps no route)
    configs = [DeviceConfig.model_validate(entry) for entry in entries]
    refused = {path[3] for path, _ in check_scenes([SceneConfig.model_validate(scene)], configs)}
    scene["steps"] = [step for i, step in enumerate(steps) if i not in refused]
    return [scene] if scene["steps"] else []


def write_demo_files(bench: Bench, args: argparse.Namespace, tokens: dict[Role, str]) -> DemoPaths:
    """Write ``site.yaml`` and ``demo.env`` (mode 0600) under ``args.dir``."""
    args.dir.mkdir(parents=True, exist_ok=True)
    site = write_site(
        args.dir / "site.yaml",
        demo_site(bench, args),
        header="Written by `cchub demo` for this run; tokens come from demo.env beside it.",
    )
    env = args.dir / "demo.env"
    fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# Demo tokens of the last `cchub demo` run (new on every run).\n")
        for role, token in tokens.items():
            out.write(f"{token_variable(role)}={token}\n")
    baresip = write_baresip_config(
        args.dir / "baresip",
        host=args.host,
        port=args.sip_port,
        user=f"demo-{Role.DISPATCHER.value}",
        password=DEMO_SIP_PASSWORD,
    )
    return DemoPaths(site=site, env=env, baresip=baresip)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cchub demo", description=__doc__)
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-port", type=int, default=8080)
    parser.add_argument("--sip-port", type=int, default=5060)
    parser.add_argument("--snmp-port", type=int, default=1161)
    parser.add_argument("--dir", type=Path, default=Path("var/demo"), help="site file and data")
    return parser


def _snmp_address(hub: Any) -> str:
    agent = getattr(hub, "snmp", None)
    if agent is None:
        return "(agent off)"
    host, port = agent.address
    return f"{host}:{port}"


def _sip_address(hub: Any) -> str:
    telephony = getattr(hub, "telephony", None)
    if telephony is None or not telephony.stack.addresses:
        return "off"
    return ", ".join(f"{a.transport.lower()} {a.host}:{a.port}" for a in telephony.stack.addresses)


def banner(hub: Any, bench: Bench, tokens: dict[Role, str], paths: DemoPaths) -> str:
    api = str(hub.api_url).rstrip("/")
    lines = [
        "",
        "cchub demo is up",
        f"  API       {api}/api/v1/health   (OpenAPI: {api}/openapi.json)",
        f"  console   {api}/",
        f"  site file {paths.site}   tokens: {paths.env}",
        f"  bench     {bench.control_url}/sims   (simulator control)",
        f"  SNMP      snmpwalk -v2c -c public {_snmp_address(hub)} 1.3.6.1.4.1.32473",
        f"  SIP       {_sip_address(hub)}   user demo-dispatcher / {DEMO_SIP_PASSWORD}",
        *alarm_hints(bench, api),
        *conference_hints(paths.baresip),
        "  demo tokens (new every run; send as 'Authorization: Bearer <token>'):",
    ]
    lines += [f"    {role.value:<10} {token}" for role, token in tokens.items()]
    lines.append("  devices:")
    lines += [f"    {line}" for line in bench.summary()]
    lines.append("Ctrl-C stops the hub and the bench.")
    return "\n".join(lines)


async def run_demo(args: argparse.Namespace) -> int:
    from hub.runtime import serve

    spec = load_bench(args.bench)
    tokens = new_tokens()
    async with Bench(spec) as bench:
        paths = await asyncio.to_thread(write_demo_files, bench, args, tokens)
        for role, token in tokens.items():
            os.environ[token_variable(role)] = token
        site = await asyncio.to_thread(load_site, paths.site)

        def ready(hub: Any) -> None:
            print(banner(hub, bench, tokens, paths), flush=True)

        await serve(site, site_path=str(paths.site), ready=ready)
    print("demo stopped", flush=True)
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from hub.runtime import run

    result: list[int] = []

    async def go() -> None:
        result.append(await run_demo(args))

    try:
        run(go())
    except ConfigError as err:
        print(f"{err.source}: invalid", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"cchub demo: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result[0] if result else 1
