"""The ``cchub`` command: run, check-config, demo, lab, version."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hub import __version__
from hub.errors import ConfigError

if TYPE_CHECKING:
    from hub.config import SiteConfig

logger = logging.getLogger("cchub")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cchub", description="Converged-communications hub for emergency command centres."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the hub with a site file")
    run.add_argument("--config", "-c", required=True, type=Path, help="site file (YAML)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument("--log-format", choices=["text", "json"], default="text")

    check = sub.add_parser("check-config", help="validate site files and report every problem")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")

    sub.add_parser("demo", help="the lab bench plus the hub, no hardware needed", add_help=False)
    sub.add_parser("lab", help="bring lab benches (device simulators) up and down", add_help=False)
    sub.add_parser("version", help="print the version")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # demo and lab own their options; hand them the rest of the line.
    if argv and argv[0] == "demo":
        from lab.demo import main as demo_main

        return demo_main(argv[1:])
    if argv and argv[0] == "lab":
        from lab.cli import main as lab_main

        return lab_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"cchub {__version__}")
        return 0
    if args.command == "check-config":
        return check_config(args.files)
    if args.command == "run":
        return run(args.config, args.log_level, args.log_format)
    raise AssertionError(args.command)


def check_config(files: list[Path]) -> int:
    from hub.config import load_site

    status = 0
    for path in files:
        try:
            site = load_site(path)
        except ConfigError as err:
            status = 1
            print(f"{path}: {len(err.problems)} problem(s)")
            for problem in err.problems:
                print(f"  {problem}")
            continue
        print(
            f"{path}: OK ({len(site.users)} users, {len(site.trunks)} trunks, "
            f"{len(site.endpoints)} endpoints, {len(site.devices)} devices, "
            f"{len(site.rules)} rules, {len(site.plans)} plans)"
        )
        from sip.dialplan import Dialplan

        dialplan = Dialplan(
            site.trunks,
            domain=site.sip.domain,
            endpoints={e.id: e.routes for e in site.endpoints},
            local_users=[u.name for u in site.users if u.sip_password is not None],
        )
        for line in dialplan.unroutable():
            print(f"  warning: {line}")
        for line in _empty_rosters(site):
            print(f"  warning: {line}")
    return status


def _empty_rosters(site: SiteConfig) -> list[str]:
    """``dial`` steps of plans whose duty-roster role no endpoint has."""
    from hub.plans import LayerStep

    roles = {r for e in site.endpoints for r in e.roles}
    out = []
    for plan in site.plans:
        for j, step in enumerate(plan.steps):
            role = step.arguments().get("role") if isinstance(step, LayerStep) else None
            if step.action == "dial" and isinstance(role, str) and role not in roles:
                known = ", ".join(sorted(roles)) or "none"
                out.append(
                    f"plan {plan.id!r} step {plan.step_id(j)!r} dials role {role!r}, "
                    f"which no endpoint has (roles: {known})"
                )
    return out


def run(config: Path, log_level: str | None, log_format: str) -> int:
    from hub.config import load_site
    from hub.logs import setup_logging
    from hub.runtime import run as run_loop
    from hub.runtime import serve

    setup_logging(log_level or "info", log_format)
    try:
        site = load_site(config)
    except ConfigError as err:
        for problem in err.problems:
            logger.error("%s: %s", config, problem)
        return 2
    if log_level is None:
        setup_logging(site.hub.log_level, log_format)
    try:
        run_loop(serve(site, site_path=str(config)))
    except OSError as err:
        logger.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
