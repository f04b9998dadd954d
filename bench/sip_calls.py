"""Benchmark: sustained SIP call setup and teardown with zero failed calls, driven by SIPp.

Run:  .venv/bin/python bench/sip_calls.py                  (target: cchub's SipStack, in this
                                                          process, answering every INVITE)
      .venv/bin/python bench/sip_calls.py --target sipp     (a SIPp UAS, for comparison)
      .venv/bin/python bench/sip_calls.py --target 127.0.0.1:5060 --target-pid 1234
      .venv/bin/python bench/sip_calls.py --save            (this run becomes the reference)

Each step runs the SIPp UAC scenario ``tests/sip/scenarios/uac_call.xml`` (INVITE with SDP,
200, ACK, BYE, 200) at a fixed rate for ``--seconds``; the rate is stepped up until a step
has a failed call or falls short of its rate. Also measured: CPU time of the target per
call (/proc/PID/stat) and its memory per established dialog (RSS while ``--dialogs`` calls
are held). The SIPp command of every step is printed; figures are printed beside
``bench/sip_reference.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.sip.peers import Address, Sipp, SippResult  # noqa: E402

REFERENCE = ROOT / "bench" / "sip_reference.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- measuring a process ---------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Kamailio works in forked children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(_children(current))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of ``pids`` (fields 14 and 15 of /proc/PID/stat)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total


# -- targets ---------------------------------------------------------------------------------


@dataclass
class Target:
    """What SIPp is pointed at; ``pid`` (when known) is measured for CPU and memory."""

    name: str
    address: Address = ("127.0.0.1", 0)
    pid: int | None = None
    tree: bool = True  # count the process's children too (not when it is this process)
    dialogs: Callable[[], int] | None = None  # established dialogs, when the target can tell
    transactions: Callable[[], int] | None = None
    stop: Callable[[], Any] | None = None
    notes: list[str] = field(default_factory=list)

    def pids(self) -> list[int]:
        if self.pid is None:
            return []
        return process_tree(self.pid) if self.tree else [self.pid]

    def cpu(self) -> float | None:
        return cpu_seconds(self.pids()) if self.pid is not None else None

    def rss(self) -> int | None:
        return rss_bytes(self.pids()) if self.pid is not None else None


async def stack_target(max_transactions: int, *, registrar_users: int = 0) -> Target:
    """cchub's ``SipStack`` in this process: INVITE answered 200 with an RFC 3264 answer
    (or, with ``registrar_users``, REGISTER answered by the registrar with digest)."""
    from sip.offer_answer import MediaCapabilities, answer
    from sip.sdp import SessionDescription
    from sip.stack import SipStack, StackConfig
    from sip.transport import TransportConfig
    from sip.uas import IncomingRequest

    caps = MediaCapabilities(address="127.0.0.1", audio_port=40000)
    config = StackConfig(
        transport=TransportConfig(port=0, tcp=False),
        domain="bench.cchub",
        rate_limit=None,  # every SIPp call comes from one source: per-source limits off
        max_transactions=max_transactions,
    )
    stack = SipStack(config)

    def on_invite(incoming: IncomingRequest) -> None:
        try:
            offer = SessionDescription.parse(incoming.request.body)
        except ValueError:
            incoming.respond(488)
            return
        body = bytes(answer(offer, caps))
        incoming.respond(200, body=body, content_type="application/sdp")

    stack.set_handler("INVITE", on_invite)
    registrar = None
    if registrar_users:
        from sip.registrar import Registrar, SipUser

        users = [SipUser(f"u{i}", f"pw{i}") for i in range(registrar_users)]
        registrar = Registrar(users, realm=config.domain, max_contacts=10)
        registrar.attach(stack)
        await registrar.start()
    await stack.start()
    bound = stack.address("UDP")

    async def stop() -> None:
        if registrar is not None:
            await registrar.close()
        await stack.close()

    return Target(
        name="cchub SipStack (in-process, uvloop)" if _uvloop() else "cchub SipStack",
        address=(bound.host, bound.port),
        pid=os.getpid(),
        tree=False,
        dialogs=lambda: len(stack.dialogs),
        transactions=lambda: stack.counters.transactions_active,
        stop=stop,
        notes=[
            f"max_transactions={max_transactions}, per-source rate limit off, UDP only",
            f"sip.registrar.Registrar, {registrar_users} users, digest MD5 offered first"
            if registrar_users
            else "INVITE handler answers 200 at once with an RFC 3264 answer; BYE by the stack",
        ],
    )


async def sipp_target(hold_s: float) -> Target:
    uas = Sipp.uas("uas_answer", calls=None, timeout=hold_s, trace_messages=False)
    await uas.start()
    assert uas.process is not None
    return Target(
        name="SIPp UAS (uas_answer.xml)",
        address=uas.address,
        pid=uas.process.pid,
        stop=uas.stop,
        notes=["sipp " + " ".join(uas.command[1:]).replace(f"{ROOT}/", "")],
    )


def external_target(text: str, pid: int | None) -> Target:
    host, _, port = text.rpartition(":")
    return Target(name=f"external {text}", address=(host, int(port)), pid=pid)


def _uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


# -- one SIPp step ---------------------------------------------------------------------------


@dataclass
class Step:
    rate: float
    calls: int
    result: SippResult
    seconds: float
    cpu: float | None

    @property
    def achieved(self) -> float:
        """Completed calls per second over SIPp's own run time."""
        seconds = self.result.elapsed or self.seconds
        return self.result.successful / seconds if seconds else 0.0

    @property
    def held(self) -> bool:
        """Zero failures, every call done, and SIPp kept (95 % of) the asked rate."""
        r = self.result
        return (
            r.exit_code == 0
            and r.failed == 0
            and r.successful == self.calls
            and self.achieved >= 0.95 * self.rate
        )

    def line(self) -> str:
        cpu = f"{1000 * self.cpu / max(1, self.result.successful):7.3f}" if self.cpu else "      -"
        verdict = "held" if self.held else "FAILED"
        latency = self.result.response_time_ms
        rtt = f"{latency:6.1f}" if latency is not None else "     -"
        return (
            f"  rate {self.rate:6.0f}/s  calls {self.calls:6d}  ok {self.result.successful:6d}"
            f"  failed {self.result.failed:4d}  achieved {self.achieved:6.1f}/s"
            f"  retrans {self.result.retransmissions:5d}  rtt ms {rtt}"
            f"  cpu ms/call {cpu}  {verdict}"
        )


async def run_step(
    target: Target,
    scenario: str,
    rate: float,
    seconds: float,
    *,
    limit: int | None = None,
    duration_ms: int = 0,
    show: bool = True,
    **sipp_options: Any,
) -> Step:
    calls = max(1, round(rate * seconds))
    sipp = Sipp.uac(
        scenario,
        target.address,
        calls=calls,
        rate=rate,
        rate_period_ms=1000,
        limit=limit or max(100, int(rate * 2)),
        duration_ms=duration_ms,
        timeout=seconds + duration_ms / 1000 + 20,
        **{"trace_messages": False, **sipp_options},
    )
    if show:
        print("  $ " + " ".join(sipp.command))
    before = target.cpu()
    started = time.perf_counter()
    async with sipp:
        result = await sipp.wait()
    elapsed = time.perf_counter() - started
    after = target.cpu()
    cpu = after - before if after is not None and before is not None else None
    return Step(rate, calls, result, elapsed, cpu)


async def search_rate(
    target: Target,
    scenario: str,
    *,
    start: float,
    factor: float,
    max_rate: float,
    seconds: float,
    **sipp_options: Any,
) -> tuple[Step | None, list[Step]]:
    """Step the rate up until a step fails; return the best step that held, and all."""
    steps: list[Step] = []
    best: Step | None = None
    rate = start
    first = True
    while rate <= max_rate:
        step = await run_step(target, scenario, rate, seconds, show=first, **sipp_options)
        first = False
        steps.append(step)
        print(step.line())
        if not step.held:
            tail = step.result.errors.strip().splitlines()[-3:]
            if tail:
                print("    sipp errors: " + " | ".join(tail))
            break
        best = step
        rate = round(rate * factor)
    return best, steps


# -- memory per dialog -----------------------------------------------------------------------


async def memory_per_dialog(target: Target, dialogs: int, rate: float) -> dict[str, float]:
    """Hold ``dialogs`` calls at once; RSS growth of the target divided by that count."""
    if target.pid is None:
        return {}
    build_s = dialogs / rate
    hold_ms = int((build_s + 3.0) * 1000)
    sipp = Sipp.uac(
        "uac_call",
        target.address,
        calls=dialogs,
        rate=rate,
        limit=dialogs,
        duration_ms=hold_ms,
        timeout=build_s + hold_ms / 1000 + 30,
        trace_messages=False,
    )
    print("  $ " + " ".join(sipp.command))
    base = target.rss() or 0
    async with sipp:
        await asyncio.sleep(build_s + 1.5)
        peak = target.rss() or 0
        established = target.dialogs() if target.dialogs is not None else dialogs
        transactions = target.transactions() if target.transactions is not None else None
        result = await sipp.wait()
    held = result.ok and result.successful == dialogs
    print(
        f"  held {established} dialogs: RSS {base / 1e6:.1f} -> {peak / 1e6:.1f} MB"
        + (f", {transactions} transactions active" if transactions is not None else "")
        + f"; calls ok {result.successful}, failed {result.failed}"
    )
    if not held or not established:
        return {}
    return {"memory_per_dialog_kb": (peak - base) / established / 1024}


# -- reference -------------------------------------------------------------------------------


def compare(section: str, figures: dict[str, float], context: dict[str, Any], save: bool) -> None:
    reference: dict[str, Any] = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    old = reference.get(section, {})
    ref = old.get("figures", {})
    print()
    print(f"{'figure':<34} {'this run':>12} {'reference':>12} {'ratio':>7}")
    for key, value in figures.items():
        prior = ref.get(key)
        old_text = f"{prior:12.3f}" if isinstance(prior, int | float) else f"{'-':>12}"
        ratio = f"{value / prior:7.2f}" if isinstance(prior, int | float) and prior else "      -"
        print(f"{key:<34} {value:12.3f} {old_text} {ratio}")
    print(
        f"(machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
        f"{platform.python_version()}; reference from {old.get('when', 'never')}, "
        f"target {old.get('context', {}).get('target', '-')})"
    )
    if save:
        reference[section] = {
            "when": datetime.date.today().isoformat(),
            "context": context,
            "figures": figures,
        }
        REFERENCE.write_text(json.dumps(reference, indent=2) + "\n")
        print(f"saved as the reference in {REFERENCE.relative_to(ROOT)}")


def section_name(bench: str, target: str) -> str:
    """Reference section: ``sip_calls`` for our stack, ``sip_calls.sipp`` for a comparison."""
    if target == "stack":
        return bench
    return f"{bench}.{target if target in ('sipp', 'kamailio') else 'external'}"


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default="stack",
        help="stack (cchub SipStack in this process), sipp, kamailio, or HOST:PORT",
    )
    parser.add_argument("--target-pid", type=int, help="PID to measure for an external target")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each rate step")
    parser.add_argument("--factor", type=float, default=1.4, help="rate multiplier per step")
    parser.add_argument("--max-transactions", type=int, default=100_000)
    parser.add_argument("--save", action="store_true", help="store this run as the reference")


async def run(args: argparse.Namespace) -> int:
    if args.target == "stack":
        target = await stack_target(args.max_transactions)
    elif args.target == "sipp":
        target = await sipp_target(hold_s=3600)
    else:
        target = external_target(args.target, args.target_pid)
    print(f"target: {target.name} at {target.address[0]}:{target.address[1]}")
    for note in target.notes:
        print(f"  {note}")
    figures: dict[str, float] = {}
    try:
        print("\nwarm-up")
        warm = await run_step(target, "uac_call", 20, 1.0)
        print(warm.line())
        if not warm.held:
            print("the target does not complete calls; stopping")
            return 1
        print(f"\nmemory per dialog ({args.dialogs} calls held at once)")
        figures.update(await memory_per_dialog(target, args.dialogs, args.dialog_rate))
        print(f"\ncall rate search ({args.seconds:g} s per step, x{args.factor} per step)")
        best, _ = await search_rate(
            target,
            "uac_call",
            start=args.start_rate,
            factor=args.factor,
            max_rate=args.max_rate,
            seconds=args.seconds,
        )
    finally:
        if target.stop is not None:
            await target.stop()
    if best is None:
        print("no rate held")
        return 1
    figures["calls_per_s_zero_failures"] = best.achieved
    if best.cpu is not None:
        figures["cpu_ms_per_call"] = 1000 * best.cpu / best.result.successful
    context = {"target": target.name, "seconds_per_step": args.seconds, "notes": target.notes}
    compare(section_name("sip_calls", args.target), figures, context, args.save)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    common_arguments(parser)
    parser.add_argument("--start-rate", type=float, default=50.0)
    parser.add_argument("--max-rate", type=float, default=2000.0)
    parser.add_argument("--dialogs", type=int, default=1000, help="calls held for memory")
    parser.add_argument("--dialog-rate", type=float, default=200.0)
    args = parser.parse_args()
    if _uvloop():
        import uvloop

        return uvloop.run(run(args))
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
