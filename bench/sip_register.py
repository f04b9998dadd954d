"""Benchmark: REGISTER with digest, sustained with zero failures, driven by SIPp.

Run:  .venv/bin/python bench/sip_register.py                 (target: cchub's SipStack and
                                                           Registrar in this process)
      .venv/bin/python bench/sip_register.py --target kamailio   (Kamailio, for comparison)
      .venv/bin/python bench/sip_register.py --target 127.0.0.1:5060 --target-pid 1234 \
          --users-prefix u --password-prefix pw --domain example.org
      .venv/bin/python bench/sip_register.py --save         (this run becomes the reference)

One "registration" is the SIPp scenario ``tests/sip/scenarios/uac_register_auth.xml``:
REGISTER, 401 with a digest challenge, REGISTER with credentials, 200 (two REGISTER
requests). ``--users`` accounts (u0/pw0, u1/pw1, ...) are registered in turn from a CSV, so
most registrations refresh an existing binding. The rate is stepped up until a step has a
failure or falls short; CPU time of the target per registration comes from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sip_calls import (
    Target,
    _uvloop,
    common_arguments,
    compare,
    external_target,
    run_step,
    search_rate,
    section_name,
    stack_target,
)

from tests.sip.peers import Kamailio


async def kamailio_target(users: dict[str, str], domain: str) -> Target:
    proxy = Kamailio(users=users, domain=domain)
    await proxy.start()
    assert proxy.process is not None
    return Target(
        name="Kamailio 5.6 registrar (2 UDP workers, htable passwords)",
        address=proxy.address,
        pid=proxy.process.pid,
        stop=proxy.stop,
        notes=["kamailio -DD -E -f kamailio.cfg (tests/sip/peers.py Kamailio)"],
    )


async def run(args: argparse.Namespace) -> int:
    users = {f"{args.users_prefix}{i}": f"{args.password_prefix}{i}" for i in range(args.users)}
    domain = args.domain
    if args.target == "stack":
        target = await stack_target(args.max_transactions, registrar_users=args.users)
        domain = "bench.cchub"
    elif args.target == "kamailio":
        target = await kamailio_target(users, domain)
    else:
        target = external_target(args.target, args.target_pid)
    print(f"target: {target.name} at {target.address[0]}:{target.address[1]}")
    for note in target.notes:
        print(f"  {note}")
    options = {"users": users, "keys": {"domain": domain, "expires": "3600"}}
    try:
        print("\nwarm-up")
        warm = await run_step(target, "uac_register_auth", 50, 1.0, **options)
        print(warm.line())
        if not warm.held:
            print("the target does not accept registrations; stopping")
            print("  " + " | ".join(warm.result.errors.strip().splitlines()[-3:]))
            return 1
        print(f"\nregistration rate search ({args.seconds:g} s per step, x{args.factor} per step)")
        best, _ = await search_rate(
            target,
            "uac_register_auth",
            start=args.start_rate,
            factor=args.factor,
            max_rate=args.max_rate,
            seconds=args.seconds,
            **options,
        )
    finally:
        if target.stop is not None:
            await target.stop()
    if best is None:
        print("no rate held")
        return 1
    figures = {"registrations_per_s_digest": best.achieved}
    figures["register_requests_per_s"] = 2 * best.achieved
    if best.cpu is not None:
        figures["cpu_ms_per_registration"] = 1000 * best.cpu / best.result.successful
    context = {
        "target": target.name,
        "users": args.users,
        "seconds_per_step": args.seconds,
        "notes": target.notes,
    }
    compare(section_name("sip_register", args.target), figures, context, args.save)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    common_arguments(parser)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--users-prefix", default="u")
    parser.add_argument("--password-prefix", default="pw")
    parser.add_argument("--domain", default="bench.test", help="AOR domain (external targets)")
    parser.add_argument("--start-rate", type=float, default=200.0)
    parser.add_argument("--max-rate", type=float, default=10_000.0)
    args = parser.parse_args()
    if _uvloop():
        import uvloop

        return uvloop.run(run(args))
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
