"""The device manager: builds a driver per configured device, starts them, routes commands."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from devices.base import Device
from devices.config import DeviceConfig
from devices.errors import DeviceConfigError, DeviceNotFound
from devices.registry import driver_for
from devices.snapshot import DeviceSnapshot

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 2.0


class DeviceManager:
    """Owns one coordinator per device; the hub reads snapshots and sends typed commands."""

    def __init__(self, configs: Sequence[DeviceConfig]) -> None:
        ids = [c.id for c in configs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise DeviceConfigError(f"duplicate device ids: {', '.join(duplicates)}")
        self._configs = list(configs)
        self._devices: dict[str, Device[Any]] = {}
        self._listeners: list[Callable[[DeviceSnapshot], None]] = []

    async def start(self) -> None:
        """Create and start every driver; a device that cannot be reached does not fail this.

        Raises :class:`DeviceConfigError` when a device's options are invalid for its driver.
        """
        if self._devices:
            return
        devices: dict[str, Device[Any]] = {}
        for config in self._configs:
            driver = driver_for(config.type)
            devices[config.id] = driver(config)
        self._devices = devices
        for device in devices.values():
            device.add_listener(self._notify)
            await device.start()
        logger.info("started %d devices", len(devices))

    async def stop(self) -> None:
        """Stop every device (concurrently, within 2 s)."""
        devices = list(self._devices.values())
        if not devices:
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                results = await asyncio.gather(*(d.stop() for d in devices), return_exceptions=True)
        except TimeoutError:
            logger.warning("devices did not all stop within %.1f s", STOP_TIMEOUT)
            return
        for device, result in zip(devices, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("[dev=%s] stopping failed", device.id, exc_info=result)

    def snapshots(self) -> dict[str, DeviceSnapshot]:
        """The current snapshot of every device (offline ones included), by id."""
        if not self._devices:
            return {
                c.id: DeviceSnapshot(c.id, c.type, False, {}, "not started") for c in self._configs
            }
        return {device_id: d.snapshot for device_id, d in self._devices.items()}

    def add_listener(self, cb: Callable[[DeviceSnapshot], None]) -> None:
        """Call ``cb`` with every changed snapshot of any device."""
        self._listeners.append(cb)

    async def command(self, device_id: str, command: Mapping[str, Any]) -> dict[str, Any]:
        """Send a typed command dict (``{"command": "route", "input": 3, "output": 1}``).

        Raises :class:`DeviceNotFound` (a ``KeyError``), :class:`InvalidCommand`,
        :class:`DeviceUnavailable`, :class:`DeviceBusy` or :class:`DeviceCommandError`.
        """
        device = self._devices.get(device_id)
        if device is None:
            raise DeviceNotFound(device_id)
        return await device.command(command)

    def _notify(self, snapshot: DeviceSnapshot) -> None:
        for callback in list(self._listeners):
            try:
                callback(snapshot)
            except Exception:
                logger.exception("[dev=%s] device listener %r failed", snapshot.id, callback)
