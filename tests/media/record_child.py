"""Run by the recording crash test: records a conference until it is killed (SIGKILL).

    python -m tests.media.record_child DIRECTORY

Prints one line, ``recording``, once the first files are open.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from media import MediaEngine, Tone


async def main(directory: Path) -> None:
    async with MediaEngine() as engine:
        engine.create_conference("crash")
        engine.play_tone("crash", Tone((700.0,)))
        engine.start_recording("crash", directory, formats=("wav", "opus"), rate=16000)
        print("recording", flush=True)
        await asyncio.sleep(60)  # the test kills us long before


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
