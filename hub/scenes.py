"""The hub's scenes: the site's scenes applied through the device manager, reported on the bus."""

from __future__ import annotations

from collections.abc import Sequence

from devices.manager import DeviceManager
from devices.scenes import SceneConfig, SceneEngine, SceneReport
from hub.bus import EventBus
from hub.events import SceneApplied, SceneFailed, SceneStarted


class SceneEvents:
    """Publishes ``scene.started`` and ``scene.applied`` / ``scene.failed`` with the report."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    def scene_started(self, scene: SceneConfig, actor: str) -> None:
        self._bus.publish(
            SceneStarted(scene=scene.id, name=scene.name, actor=actor, devices=list(scene.devices))
        )

    def scene_finished(self, report: SceneReport) -> None:
        data = report.as_dict()
        if report.ok:
            self._bus.publish(
                SceneApplied(scene=report.scene, name=report.name, actor=report.actor, report=data)
            )
            return
        self._bus.publish(
            SceneFailed(
                scene=report.scene,
                name=report.name,
                actor=report.actor,
                outcome=report.outcome.value,
                failed_step=data["failed_step"],
                error=report.error,
                report=data,
            )
        )


def scene_engine(
    manager: DeviceManager, scenes: Sequence[SceneConfig], bus: EventBus
) -> SceneEngine:
    """The engine for the site's scenes, publishing its events on ``bus``."""
    return SceneEngine(manager, scenes, SceneEvents(bus))
