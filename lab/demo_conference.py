"""The demo's conference pieces: the ``ops`` room, the ``duty-officer`` endpoint, and a
baresip configuration that registers as the demo SIP user (``baresip -f var/demo/baresip``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.bench import Bench

DEMO_ROOM = {"id": "ops", "name": "Operations bridge", "number": "8000", "pin": "4321"}
# where Debian's baresip package puts its modules
BARESIP_MODULES = Path("/usr/lib/baresip/modules")


def conference_endpoints(bench: Bench) -> list[dict[str, Any]]:
    """``duty-officer``: a mobile the PSTN gateway answers busy, then an office line it
    answers with its own tone (so two simulated phones in a conference sound different)."""
    for sim in bench.sims.values():
        numbers = getattr(sim.state, "numbers", None)
        if not getattr(sim, "site_trunk", None) or not numbers:
            continue
        busy = [n for n, b in numbers.items() if b.action == "busy"]
        toned = [n for n, b in numbers.items() if b.action == "answer" and b.tone_hz]
        if busy and toned:
            routes = [f"pstn:{busy[0]}", f"pstn:{toned[0]}"]
            return [
                {"id": "duty-officer", "name": "Duty officer (mobile, office)", "routes": routes}
            ]
    return []


def conference_section() -> dict[str, Any]:
    """The site's ``conferences:``: one standing room that SIP phones dial with a PIN."""
    return {"rooms": [DEMO_ROOM]}


def write_baresip_config(
    directory: Path, *, host: str, port: int, user: str, password: str, audio: str = "alsa"
) -> Path:
    """``config`` and ``accounts`` for ``baresip -f DIRECTORY``: the demo SIP user,
    registered with the hub, sound through ``audio`` (an ALSA or PulseAudio device)."""
    directory.mkdir(parents=True, exist_ok=True)
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    device = f"{audio},default"
    config = [
        f"module_path {BARESIP_MODULES}",
        # SIP and RTP on the hub's address: SDP must not advertise another interface
        f"net_interface {host}",
        f"audio_player {device}",
        f"audio_source {device}",
        f"audio_alert {device}",
        "module stdio.so",
        "module g711.so",
        "module g722.so",
        f"module {audio}.so",
        "module_app account.so",
        "module_app menu.so",
    ]
    (directory / "config").write_text("\n".join(line for line in config if line) + "\n")
    address = f"[{host}]" if ":" in host else host
    (directory / "accounts").write_text(f"<sip:{user}@{address}:{port}>;auth_pass={password}\n")
    return directory


def conference_hints(baresip: Path | None) -> list[str]:
    """Banner lines: the room, and how to join it from baresip."""
    room = DEMO_ROOM
    lines = [f"  room      {room['name']}: dial {room['number']}, PIN {room['pin']}"]
    if baresip is not None:
        lines.append(
            f"  phone     baresip -f {baresip}   then /dial {room['number']}"
            f" and /sndcode {room['pin']}#   (README: Your first conference)"
        )
    return lines
