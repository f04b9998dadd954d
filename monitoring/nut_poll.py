"""NUT polling coordinator: one connection to upsd, ``LIST UPS`` then ``LIST VAR`` for each
UPS (or the configured one); the same ``ups.<key>`` metrics a UPS device feeds
(``ups.on_battery``, ``ups.charge_percent``...), each labelled with the UPS's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from devices.drivers.nut import ups_state
from monitoring.coordinator import Coordinator, Feed, PollFailed
from monitoring.samples import Sample
from monitoring.targets import NutTarget
from protocols import nut

# state keys fed as metrics, and their units
_UNITS = {
    "charge_percent": "%",
    "input_voltage": "V",
    "output_voltage": "V",
    "output_load_percent": "%",
    "runtime_s": "s",
    "minutes_remaining": "min",
}
_FLAGS = ("on_battery", "battery_low", "charging", "replace_battery", "overload")


class NutCoordinator(Coordinator):
    """Polls one NUT server (upsd, TCP 3493)."""

    kind = "nut"
    target: NutTarget

    def __init__(self, target: NutTarget, feed: Feed, **kwargs: Any) -> None:
        super().__init__(target, feed, **kwargs)
        self._client: nut.NutClient | None = None
        self.where = f"upsd {target.host}:{target.port}"

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _connect(self) -> nut.NutClient:
        if self._client is not None and not self._client.closed:
            return self._client
        try:
            client = await nut.NutClient.connect(
                self.target.host, self.target.port, limit=self.target.timeout
            )
        except TimeoutError:
            raise PollFailed(
                "timeout", f"cannot open {self.where} within {self.target.timeout:g} s"
            ) from None
        except OSError as err:
            raise PollFailed("refused", f"cannot open {self.where}: {err}") from err
        self._client = client
        if self.target.username is not None and self.target.password is not None:
            await self._ask(
                client.authenticate(self.target.username, self.target.password.get_secret_value()),
                "USERNAME",
            )
        return client

    async def _ask(self, request: Any, doing: str) -> Any:
        """One request; upsd's and the stream's errors become PollFailed."""
        try:
            return await request
        except nut.NutError as err:
            # DATA-STALE, DRIVER-NOT-CONNECTED: upsd is fine, the UPS behind it is not
            raise PollFailed("device", f"{self.where} {doing}: {err}") from err
        except nut.NutProtocolError as err:
            self.count("garbled")
            raise PollFailed("protocol", f"{self.where} {doing}: garbled answer: {err}") from err
        except TimeoutError:
            raise PollFailed("timeout", f"{self.where} {doing}: no answer") from None
        except (ConnectionError, OSError) as err:
            raise PollFailed(
                "refused", f"{self.where} {doing}: {err or type(err).__name__}"
            ) from err

    async def _fetch(self) -> Sequence[Sample]:
        client = await self._connect()
        if self.target.ups is not None:
            names = [self.target.ups]
        else:
            served = await self._ask(client.list_ups(), "LIST UPS")
            names = sorted(served)
        samples: list[Sample] = []
        for name in names:
            values = await self._ask(client.list_var(name), f"LIST VAR {name}")
            now = self._clock()
            state = ups_state(name, values)
            labels = {"ups": name}
            for key in _FLAGS:
                samples.append(
                    self.make_sample(f"ups.{key}", 1.0 if state[key] else 0.0, now, "", labels)
                )
            for key, unit in _UNITS.items():
                value = state.get(key)
                number = float(value) if isinstance(value, int | float) else None
                samples.append(self.make_sample(f"ups.{key}", number, now, unit, labels))
        return samples
