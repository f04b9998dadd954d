"""The hub's side of the centre's equipment: device managers as events, health and commands."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from devices.manager import DeviceManager
from devices.snapshot import DeviceSnapshot
from hub.bus import EventBus
from hub.events import DeviceStateChanged, SubsystemState

logger = logging.getLogger(__name__)


class Equipment:
    """Runs the site's devices and turns every snapshot change into a bus event."""

    def __init__(self, manager: DeviceManager, bus: EventBus) -> None:
        self.manager = manager
        self._bus = bus
        manager.add_listener(self._on_snapshot)

    async def start(self) -> None:
        await self.manager.start()

    async def stop(self) -> None:
        await self.manager.stop()

    def snapshots(self) -> dict[str, DeviceSnapshot]:
        return self.manager.snapshots()

    async def command(self, device_id: str, command: Mapping[str, Any]) -> dict[str, Any]:
        return await self.manager.command(device_id, command)

    def health(self) -> tuple[SubsystemState, str]:
        """Up when every device is online; degraded (not down) when some are not."""
        snapshots = list(self.snapshots().values())
        offline = [s for s in snapshots if not s.online]
        if not snapshots:
            return SubsystemState.UP, "no devices configured"
        summary = f"{len(snapshots) - len(offline)}/{len(snapshots)} online"
        if not offline:
            return SubsystemState.UP, summary
        reasons = ", ".join(f"{s.id} ({s.error or 'offline'})" for s in offline)
        return SubsystemState.DEGRADED, f"{summary}; offline: {reasons}"

    def _on_snapshot(self, snapshot: DeviceSnapshot) -> None:
        data = snapshot.as_dict()
        self._bus.publish(
            DeviceStateChanged(
                device=snapshot.id,
                type=snapshot.type,
                online=snapshot.online,
                state=data["state"],
                error=snapshot.error,
            )
        )
