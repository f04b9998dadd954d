"""Benchmark: N G.711 RTP legs in K conferences, through cchub's media engine (and Janus).

Run:  .venv/bin/python bench/conference.py                  (steps N up, prints figures beside
                                                             bench/conference_reference.json)
      .venv/bin/python bench/conference.py --legs 400       (one load only)
      .venv/bin/python bench/conference.py --janus          (also the same load through Janus
                                                             AudioBridge, and the CPU ratio)
      .venv/bin/python bench/conference.py --save           (this run becomes the reference)
      .venv/bin/python bench/conference.py --priority normal (no real-time scheduling)

Three processes per load, so that none steals another's CPU: the bridge under test (cchub's
engine in its own process, or ``janus``), and a bounded RTP generator of our own (one UDP
socket per leg, epoll, kernel receive timestamps). In every conference one leg sends 200 ms
bursts of a 1 kHz tone once a second, the others send digital silence. The generator
measures, over the measurement window only:

* late frames: packets that reach the leg more than one frame (20 ms) after their slot on
  the sender's 20 ms grid (grid origin = the earliest packet), and lost frames (RTP
  timestamp gaps);
* bridge-added delay: from sending the first tone packet to the kernel's receive time of
  the first non-silent packet on each other leg of that conference (p50, p99);
* the bridge's CPU (user+system of its process) per leg, as % of one core.

By default the bridge and the generator run under ``chrt --rr 10``, as media servers are run
in production: on a machine shared with other work (CI, other tenants) that is what keeps
the figures about the bridge rather than about the neighbours. Both bridges get the same.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import selectors
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REFERENCE = ROOT / "bench" / "conference_reference.json"
FRAME = 0.020
SILENCE = b"\xff" * 160
BURST_EVERY = 50  # frames between tone bursts per conference (1 s)
BURST_FRAMES = 10  # 200 ms of tone
LATE_LIMIT = 0.005  # "held" means fewer late frames than this fraction
# Linux's SO_TIMESTAMPNS (Python 3.11 does not name it): kernel receive time per datagram.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def _tone_payload() -> bytes:

    from media import dsp, g711

    # 1 kHz at 8 kHz repeats every 8 samples: every 20 ms frame is the same bytes
    return g711.encode(dsp.tone(1000.0, 8000, 160, -12.0), g711.ULAW).tobytes()


# -- the generator process ---------------------------------------------------------------------


def run_generator(legs: int, per_conf: int, warmup: float, seconds: float) -> None:
    """Bind N sockets, print their ports, read targets, send and receive, print results."""
    socks = []
    for _ in range(legs):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        socks.append(s)
    print(json.dumps({"ports": [s.getsockname()[1] for s in socks]}), flush=True)
    targets = [tuple(t) for t in json.loads(sys.stdin.readline())["targets"]]
    tone = _tone_payload()
    conf_of = [i // per_conf for i in range(legs)]
    confs = max(conf_of) + 1
    talker = {c * per_conf for c in range(confs)}
    offset = [(c * 7) % BURST_EVERY for c in range(confs)]  # stagger bursts
    # receive records (appended per packet; arrays built at the end)
    rx_ts: list[list[int]] = [[] for _ in range(legs)]
    rx_at: list[list[float]] = [[] for _ in range(legs)]
    waiting = [0.0] * legs  # send time of the burst a listener is waiting to hear, or 0
    delays: list[float] = []
    fd_leg = {s.fileno(): i for i, s in enumerate(socks)}
    selector = selectors.EpollSelector()
    for s in socks:
        selector.register(s, selectors.EVENT_READ)
    header = struct.Struct("!BBHII")
    stamp = struct.Struct("@qq")
    seq = [0] * legs
    ts = [i * 1000 for i in range(legs)]
    ssrc = [0x10000 + i for i in range(legs)]
    frames_total = int((warmup + seconds) / FRAME)
    measure_from = int(warmup / FRAME)
    measuring = False
    t_measure = 0.0
    send_late = 0
    cpu0 = 0.0

    def drain(fd: int) -> None:
        i = fd_leg[fd]
        sock = socks[i]
        while True:
            try:
                data, anc, _flags, _addr = sock.recvmsg(512, 64)
            except BlockingIOError:
                return
            if len(data) < 12:
                continue
            arrival = time.time()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = stamp.unpack(value[:16])
                    arrival = sec + nsec * 1e-9
            if not measuring:
                continue
            rx_ts[i].append(struct.unpack_from("!I", data, 4)[0])
            rx_at[i].append(arrival)
            if waiting[i] and data[12:] != SILENCE:
                delays.append(arrival - waiting[i])
                waiting[i] = 0.0

    start = time.monotonic() + 0.2
    for k in range(frames_total):
        deadline = start + k * FRAME
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in selector.select(left):
                drain(key.fd)
        if time.monotonic() - deadline > FRAME:
            send_late += 1
        if k == measure_from:
            measuring = True
            t_measure = time.time()
            cpu0 = _self_cpu()
            print(json.dumps({"event": "measure-start"}), flush=True)
        now = time.time()
        for i in range(legs):
            c = conf_of[i]
            phase = (k + offset[c]) % BURST_EVERY
            payload = tone if (i in talker and phase < BURST_FRAMES) else SILENCE
            if i in talker and phase == 0 and measuring:
                for j in range(c * per_conf, min(legs, (c + 1) * per_conf)):
                    if j != i:
                        waiting[j] = now
            packet = header.pack(0x80, 0, seq[i] & 0xFFFF, ts[i] & 0xFFFFFFFF, ssrc[i]) + payload
            with contextlib.suppress(BlockingIOError):
                socks[i].sendto(packet, targets[i])
            seq[i] += 1
            ts[i] += 160
    t_end = time.time()
    cpu_used = _self_cpu() - cpu0
    print(json.dumps({"event": "measure-end"}), flush=True)
    # let the last packets arrive, then account
    end_drain = time.monotonic() + 0.3
    while time.monotonic() < end_drain:
        for key, _ in selector.select(0.05):
            drain(key.fd)
    late = received = lost = 0
    for i in range(legs):
        stamps, arrivals = rx_ts[i], rx_at[i]
        if not stamps:
            lost += int((t_end - t_measure) / FRAME)
            continue
        base_ts = stamps[0]
        rel = [
            a - ((t - base_ts) & 0xFFFFFFFF) / 8000 for t, a in zip(stamps, arrivals, strict=True)
        ]
        origin = min(rel)
        late += sum(1 for r in rel if r - origin > FRAME)
        received += len(stamps)
        span = ((stamps[-1] - base_ts) & 0xFFFFFFFF) // 160 + 1
        lost += max(0, span - len(stamps))
    delays.sort()
    result = {
        "received": received,
        "late": late,
        "lost": lost,
        "delay_p50_ms": 1000 * delays[len(delays) // 2] if delays else None,
        "delay_p99_ms": 1000 * delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        if delays
        else None,
        "delay_samples": len(delays),
        "generator_cpu_percent": 100 * cpu_used / max(1e-9, t_end - t_measure),
        "generator_late_sends": send_late,
    }
    print(json.dumps({"event": "result", "result": result}), flush=True)


def _watch_gc() -> dict[int, float]:
    """Longest garbage-collector pause per generation (seconds), filled in as they happen."""
    import gc

    longest: dict[int, float] = {0: 0.0, 1: 0.0, 2: 0.0}
    began = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            generation = info["generation"]
            longest[generation] = max(longest[generation], time.perf_counter() - began[0])

    gc.callbacks.append(callback)
    return longest


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the cchub engine process ------------------------------------------------------------------


def run_engine(legs: int, per_conf: int, profile: str = "") -> None:
    import uvloop

    uvloop.install()
    if not profile:
        asyncio.run(_engine_main(legs, per_conf))
        return
    import cProfile

    with cProfile.Profile() as prof:
        asyncio.run(_engine_main(legs, per_conf))
    prof.dump_stats(profile)


async def _engine_main(legs: int, per_conf: int) -> None:
    import logging

    from media import LegSpec, MediaEngine

    logging.basicConfig(level=logging.WARNING)
    gc_pauses = _watch_gc()
    remotes = json.loads(await asyncio.to_thread(sys.stdin.readline))["remotes"]
    async with MediaEngine() as engine:
        ports = []
        for i in range(legs):
            conf = f"c{i // per_conf}"
            if conf not in engine.conferences():
                engine.create_conference(conf)
            spec = LegSpec(leg_id=f"l{i}", remote=("127.0.0.1", remotes[i]), rtcp=False)
            info = await engine.add_leg(conf, spec)
            ports.append(info.local[1])
        print(json.dumps({"ports": ports}), flush=True)
        cpu0 = wall0 = 0.0
        stats0 = engine.stats()
        while True:
            line = (await asyncio.to_thread(sys.stdin.readline)).strip()
            if line == "start":
                cpu0, wall0, stats0 = _self_cpu(), time.monotonic(), engine.stats()
            elif line == "stop":
                cpu, wall, stats = _self_cpu() - cpu0, time.monotonic() - wall0, engine.stats()
                lost = sum(engine.leg_stats(f"l{i}").lost for i in range(legs))
                print(
                    json.dumps(
                        {
                            "cpu_seconds": cpu,
                            "wall_seconds": wall,
                            "ticks": stats.ticks - stats0.ticks,
                            "late_ticks": stats.late_ticks - stats0.late_ticks,
                            "skipped_ticks": stats.skipped_ticks - stats0.skipped_ticks,
                            "tick_ms_avg": stats.tick_ms_avg,
                            "tick_ms_max": stats.tick_ms_max,
                            "lost_in": lost,
                            "gc_max_ms": {g: round(1000 * p, 1) for g, p in gc_pauses.items()},
                        }
                    ),
                    flush=True,
                )
            elif line in ("quit", ""):
                return


# -- Janus AudioBridge -------------------------------------------------------------------------


JANUS_CONFIG = """general: {{
    configs_folder = "{dir}"
    plugins_folder = "/usr/lib/x86_64-linux-gnu/janus/plugins"
    transports_folder = "/usr/lib/x86_64-linux-gnu/janus/transports"
    events_folder = "/usr/lib/x86_64-linux-gnu/janus/events"
    loggers_folder = "/usr/lib/x86_64-linux-gnu/janus/loggers"
    debug_level = 2
    session_timeout = 600
    interface = "127.0.0.1"
}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    ice_ignore_list = "vmnet"
}}
plugins: {{
    disable = "{plugins}"
}}
transports: {{
    disable = "{transports}"
}}
events: {{
    broadcast = false
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
"""
# Only AudioBridge and the HTTP API are loaded, so Janus's CPU is the bridge's.
_PLUGINS = "echotest videocall videoroom streaming sip nosip recordplay textroom voicemail lua"
JANUS_OTHER_PLUGINS = ",".join(f"libjanus_{name}.so" for name in [*_PLUGINS.split(" "), "duktape"])
_TRANSPORTS = ("websockets", "pfunix", "mqtt", "nanomsg", "rabbitmq")
JANUS_OTHER_TRANSPORTS = ",".join(f"libjanus_{name}.so" for name in _TRANSPORTS)
JANUS_HTTP = """general: {{
    json = "compact"
    base_path = "/janus"
    http = true
    port = {port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_base_path = "/admin"
    admin_http = false
}}
"""
JANUS_BRIDGE = """general: {
    rtp_port_range = "40000-60000"
    local_ip = "127.0.0.1"
}
"""


class JanusBridge:
    """A private ``janus`` process with only AudioBridge and the HTTP API, on 127.0.0.1."""

    def __init__(self, prefix: list[str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cchub-janus-"))
        self.port = _free_port()
        (self.dir / "janus.jcfg").write_text(
            JANUS_CONFIG.format(
                dir=self.dir, plugins=JANUS_OTHER_PLUGINS, transports=JANUS_OTHER_TRANSPORTS
            )
        )
        (self.dir / "janus.transport.http.jcfg").write_text(JANUS_HTTP.format(port=self.port))
        (self.dir / "janus.plugin.audiobridge.jcfg").write_text(JANUS_BRIDGE)
        self.command = [*prefix, "janus", "-F", str(self.dir), "-C", str(self.dir / "janus.jcfg")]
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}/janus"

    def start(self) -> None:
        self.log = open(self.dir / "janus.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cpu(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def setup(self, remotes: list[int], per_conf: int) -> list[int]:
        """Create the rooms, join one plain-RTP participant per remote; returns Janus's ports."""
        import httpx

        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(100):
                try:
                    await http.post(self.url, json={"janus": "info", "transaction": "i"})
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            session = (
                await http.post(self.url, json={"janus": "create", "transaction": "s"})
            ).json()
            base = f"{self.url}/{session['data']['id']}"
            self.session_url = base
            rooms = (len(remotes) + per_conf - 1) // per_conf

            async def attach() -> str:
                reply = (
                    await http.post(
                        base,
                        json={
                            "janus": "attach",
                            "plugin": "janus.plugin.audiobridge",
                            "transaction": "a",
                        },
                    )
                ).json()
                return f"{base}/{reply['data']['id']}"

            admin = await attach()
            for r in range(rooms):
                body = {
                    "request": "create",
                    "room": 1000 + r,
                    "sampling_rate": 8000,
                    "allow_rtp_participants": True,
                    "audiolevel_ext": False,
                }
                reply = (
                    await http.post(
                        admin, json={"janus": "message", "transaction": f"c{r}", "body": body}
                    )
                ).json()
                if reply.get("plugindata", {}).get("data", {}).get("audiobridge") != "created":
                    raise RuntimeError(f"Janus create room failed: {reply}")
            ports: list[int] = []
            pending: dict[int, int] = {}  # Janus handle id -> leg index
            for i, remote in enumerate(remotes):
                handle = await attach()
                pending[int(handle.rsplit("/", 1)[1])] = i
                body = {
                    "request": "join",
                    "room": 1000 + i // per_conf,
                    "display": f"l{i}",
                    "codec": "pcmu",
                    "rtp": {"ip": "127.0.0.1", "port": remote, "payload_type": 0},
                }
                await http.post(
                    handle, json={"janus": "message", "transaction": f"j{i}", "body": body}
                )
            found: dict[int, int] = {}
            deadline = time.monotonic() + 60
            while len(found) < len(remotes) and time.monotonic() < deadline:
                events = (await http.get(base, params={"maxev": 50})).json()
                for event in events if isinstance(events, list) else [events]:
                    data = event.get("plugindata", {}).get("data", {})
                    sender = event.get("sender")
                    if data.get("audiobridge") == "joined" and "rtp" in data and sender in pending:
                        found[pending[sender]] = int(data["rtp"]["port"])
            if len(found) < len(remotes):
                raise RuntimeError(f"Janus gave RTP ports for {len(found)} of {len(remotes)} legs")
            ports = [found[i] for i in range(len(remotes))]
            return ports

    async def keepalive(self) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=5) as http:
            await http.post(self.session_url, json={"janus": "keepalive", "transaction": "k"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- orchestration -----------------------------------------------------------------------------


def _can_run(prefix: list[str]) -> bool:
    try:
        return subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _cmd(*args: object) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *map(str, args)]


def _read_json(proc: subprocess.Popen[str], what: str, timeout: float = 120.0) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{what} exited (code {proc.poll()})")
        with contextlib.suppress(json.JSONDecodeError):
            value: dict[str, Any] = json.loads(line)
            return value
    raise RuntimeError(f"{what} did not answer in {timeout:.0f} s")


def _send(proc: subprocess.Popen[str], data: Any) -> None:
    assert proc.stdin is not None
    proc.stdin.write((data if isinstance(data, str) else json.dumps(data)) + "\n")
    proc.stdin.flush()


# How the bridge under test is scheduled: as any process, or as media servers are run in
# production (real-time round-robin, like FreeSWITCH -rp or Asterisk -p). The generator is
# scheduled the same way, so that the other tenants of a shared machine do not decide the result.
PRIORITY = {"normal": [], "realtime": ["chrt", "--rr", "10"]}


def run_load(
    target: str, legs: int, per_conf: int, warmup: float, seconds: float, priority: str = "normal"
) -> dict[str, Any]:
    gen_cmd = PRIORITY[priority] + _cmd(
        "--role",
        "generator",
        "--legs",
        legs,
        "--per-conf",
        per_conf,
        "--warmup",
        warmup,
        "--seconds",
        seconds,
    )
    gen = subprocess.Popen(gen_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    engine: subprocess.Popen[str] | None = None
    janus: JanusBridge | None = None
    try:
        remotes = _read_json(gen, "generator")["ports"]
        if target == "cchub":
            eng_cmd = PRIORITY[priority] + _cmd(
                "--role", "engine", "--legs", legs, "--per-conf", per_conf
            )
            print("  $", shlex.join(eng_cmd), flush=True)
            engine = subprocess.Popen(
                eng_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            _send(engine, {"remotes": remotes})
            ports = _read_json(engine, "engine")["ports"]
        else:
            janus = JanusBridge(PRIORITY[priority])
            print("  $", shlex.join(janus.command), flush=True)
            janus.start()
            ports = asyncio.run(janus.setup(remotes, per_conf))
        print("  $", shlex.join(gen_cmd), flush=True)
        _send(gen, {"targets": [["127.0.0.1", p] for p in ports]})
        _read_json(gen, "generator", warmup + 30)  # measure-start
        cpu0 = janus.cpu() if janus else 0.0
        t0 = time.monotonic()
        if engine:
            _send(engine, "start")
        _read_json(gen, "generator", seconds + 30)  # measure-end
        bridge: dict[str, Any]
        if engine:
            _send(engine, "stop")
            bridge = _read_json(engine, "engine")
        else:
            assert janus is not None
            bridge = {"cpu_seconds": janus.cpu() - cpu0, "wall_seconds": time.monotonic() - t0}
        result = _read_json(gen, "generator", 30)["result"]
    finally:
        if engine is not None:
            with contextlib.suppress(Exception):
                _send(engine, "quit")
            try:
                engine.wait(10)
            except subprocess.TimeoutExpired:
                engine.kill()
        if janus is not None:
            janus.stop()
        gen.kill()
        gen.wait()
    expected = legs * seconds / FRAME
    cpu_percent = 100 * bridge["cpu_seconds"] / bridge["wall_seconds"]
    return {
        "target": target,
        "legs": legs,
        "conferences": (legs + per_conf - 1) // per_conf,
        "cpu_percent_of_core": round(cpu_percent, 1),
        "cpu_percent_per_leg": round(cpu_percent / legs, 4),
        "late_frames": result["late"],
        "late_percent": round(100 * result["late"] / expected, 3),
        "lost_frames": result["lost"],
        "delay_p50_ms": None
        if result["delay_p50_ms"] is None
        else round(result["delay_p50_ms"], 1),
        "delay_p99_ms": None
        if result["delay_p99_ms"] is None
        else round(result["delay_p99_ms"], 1),
        "delay_samples": result["delay_samples"],
        "generator_cpu_percent": round(result["generator_cpu_percent"], 1),
        "generator_late_sends": result["generator_late_sends"],
        **{
            k: v
            for k, v in bridge.items()
            if k in ("late_ticks", "skipped_ticks", "tick_ms_avg", "tick_ms_max", "gc_max_ms")
        },
    }


def _row(r: dict[str, Any]) -> str:
    return (
        f"{r['target']:>6} N={r['legs']:<4} K={r['conferences']:<3} "
        f"cpu={r['cpu_percent_of_core']:>5}% ({r['cpu_percent_per_leg']:.3f}%/leg) "
        f"late={r['late_percent']:.3f}% lost={r['lost_frames']} "
        f"delay p50={r['delay_p50_ms']} p99={r['delay_p99_ms']} ms "
        f"gen_cpu={r['generator_cpu_percent']}%"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--role", choices=("main", "generator", "engine"), default="main")
    parser.add_argument(
        "--legs", type=int, default=0, help="one load of N legs (default: step N up)"
    )
    parser.add_argument("--steps", default="100,200,400,600,800,1000,1200")
    parser.add_argument("--per-conf", type=int, default=10, help="legs per conference")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--janus", action="store_true", help="also run each load through Janus AudioBridge"
    )
    parser.add_argument("--save", action="store_true")
    parser.add_argument(
        "--priority",
        choices=sorted(PRIORITY),
        default="realtime",
        help="scheduling of the bridge and generator processes (default: realtime, via chrt)",
    )
    args = parser.parse_args()
    if args.role == "generator":
        run_generator(args.legs, args.per_conf, args.warmup, args.seconds)
        return
    if args.role == "engine":
        run_engine(args.legs, args.per_conf, os.environ.get("CCHUB_BENCH_PROFILE", ""))
        return
    if args.priority == "realtime" and not _can_run(PRIORITY["realtime"]):
        print("real-time scheduling is not permitted here: running with --priority normal")
        args.priority = "normal"
    print("commands:", shlex.join(sys.argv), flush=True)
    steps = [args.legs] if args.legs else [int(s) for s in args.steps.split(",")]
    results: list[dict[str, Any]] = []
    ratios: dict[int, float] = {}
    held = 0
    for legs in steps:
        r = run_load("cchub", legs, args.per_conf, args.warmup, args.seconds, args.priority)
        print(_row(r), flush=True)
        print(
            f"       engine: late ticks {r.get('late_ticks')}, skipped {r.get('skipped_ticks')}, "
            f"tick avg {r.get('tick_ms_avg', 0):.1f} ms max {r.get('tick_ms_max', 0):.1f} ms, "
            f"longest GC pause per generation {r.get('gc_max_ms')} ms",
            flush=True,
        )
        results.append(r)
        ok = (
            r["late_percent"] < 100 * LATE_LIMIT
            and r["lost_frames"] < LATE_LIMIT * legs * args.seconds / FRAME
        )
        if ok:
            held = legs
        if args.janus:
            if shutil.which("janus") is None:
                print("  janus: not installed (Debian package janus)")
            else:
                j = run_load("janus", legs, args.per_conf, args.warmup, args.seconds, args.priority)
                print(_row(j), flush=True)
                results.append(j)
                if j["cpu_percent_of_core"]:
                    ratio = r["cpu_percent_of_core"] / j["cpu_percent_of_core"]
                    ratios[legs] = round(ratio, 2)
                    print(f"  CPU ratio cchub/Janus at N={legs}: {ratio:.2f}", flush=True)
        if not ok:
            break
    figures = {"largest_n_held": held, "cpu_ratio_cchub_to_janus": ratios, "loads": results}
    print(f"largest N held with < {100 * LATE_LIMIT}% late frames: {held}")
    if REFERENCE.exists():
        ref = json.loads(REFERENCE.read_text())
        old_figures = ref["figures"]
        print(
            f"reference ({ref.get('when')}, {ref.get('machine')}): "
            f"largest N held {old_figures['largest_n_held']}, "
            f"CPU ratio cchub/Janus {old_figures.get('cpu_ratio_cchub_to_janus')}"
        )
        for old in ref["figures"]["loads"]:
            print("  ref", _row(old))
    if args.save:
        REFERENCE.write_text(
            json.dumps(
                {
                    "when": time.strftime("%Y-%m-%d"),
                    "machine": f"{platform.machine()} {os.cpu_count()} cpu",
                    "args": vars(args),
                    "figures": figures,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"saved {REFERENCE}")


if __name__ == "__main__":
    main()
