"""The snmpsim engine's own venv, built from Debian's python3 where user ``nobody`` can run it.

snmpsim refuses to run as root, so the lab starts it with ``--process-user nobody``: its venv
and data must be world-readable. ``python -m lab.snmpsim_env`` (``make snmpsim``) builds it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

# The versions the lab was tested with; pysmi is required by snmpsim's MIB handling and
# cryptography by pysnmp's SNMPv3 privacy (DES, AES).
REQUIREMENTS = ("snmpsim==1.2.2", "pysnmp==7.1.30", "pysmi==2.0.0", "cryptography==50.0.2")


class SnmpsimUnavailable(RuntimeError):
    """The snmpsim venv is missing and could not be built; the message says why and how."""


def home() -> Path:
    """World-traversable base for the venv and per-run data (``CCHUB_SNMPSIM_HOME``)."""
    default = f"/tmp/cchub-snmpsim-{os.getuid()}"
    return Path(os.environ.get("CCHUB_SNMPSIM_HOME", default))


def venv_dir() -> Path:
    return home() / "venv"


def responder() -> Path:
    return venv_dir() / "bin" / "snmpsim-command-responder"


def _base_python() -> str:
    explicit = os.environ.get("CCHUB_SNMPSIM_PYTHON")
    if explicit:
        return explicit
    if Path("/usr/bin/python3").exists():
        return "/usr/bin/python3"
    return shutil.which("python3") or sys.executable


def _stamp() -> Path:
    return venv_dir() / ".cchub-requirements"


def is_ready() -> bool:
    stamp = _stamp()
    return (
        responder().exists() and stamp.exists() and stamp.read_text().split() == list(REQUIREMENTS)
    )


def world_readable(path: Path) -> str | None:
    """``None`` if ``nobody`` can read ``path``, else the first directory or file in the way."""
    path = path.resolve()
    for parent in reversed(path.parents):
        if not parent.stat().st_mode & stat.S_IXOTH:
            return str(parent)
    if not path.stat().st_mode & stat.S_IROTH:
        return str(path)
    return None


def ensure() -> Path:
    """Build the venv if needed (blocking: call off the event loop); return the responder path."""
    if is_ready():
        return responder()
    base = home()
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_ready():
            return responder()
        python = _base_python()
        pip = venv_dir() / "bin" / "pip"
        steps = [[str(pip), "install", "-q", *REQUIREMENTS]]
        if not pip.exists():
            steps.insert(0, [python, "-m", "venv", "--clear", str(venv_dir())])
        # else upgrade in place: a running snmpsim of another bench keeps its files
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise SnmpsimUnavailable(
                    f"cannot build the snmpsim venv at {venv_dir()} ({' '.join(step[:3])}...):"
                    f" {' | '.join(tail)}. Run `make snmpsim` or set CCHUB_SNMPSIM_HOME to a"
                    " world-readable directory."
                )
        _stamp().write_text("\n".join(REQUIREMENTS) + "\n")
    if os.getuid() == 0:
        blocker = world_readable(responder())
        if blocker is not None:
            raise SnmpsimUnavailable(
                f"snmpsim must run as nobody but {blocker} is not readable by others;"
                " set CCHUB_SNMPSIM_HOME to a world-readable directory"
            )
    return responder()


def main() -> int:
    try:
        path = ensure()
    except SnmpsimUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
