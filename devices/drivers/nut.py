"""UPS through a NUT server (upsd, TCP 3493): ``LIST VAR`` each poll, ``ups.status`` -> Ups state.

upsd answers ``ERR DATA-STALE`` when its driver stopped updating and ``ERR DRIVER-NOT-CONNECTED``
when the driver is gone: the UPS is then offline with that reason (upsd itself may be fine).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import Field, SecretStr, model_validator

from devices.base import Device, DeviceOptions
from devices.capabilities import Ups
from devices.config import DeviceConfig, TcpTransport
from devices.errors import DeviceConfigError, DeviceTimeout, DeviceUnavailable
from devices.registry import register
from protocols import nut
from protocols.nut import StatusFlag


class NutOptions(DeviceOptions):
    ups: str | None = Field(
        None,
        min_length=1,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="the UPS's name in upsd's ups.conf (default: the only UPS upsd serves)",
    )
    username: str | None = Field(None, min_length=1, description="upsd.users user")
    password: SecretStr | None = Field(None, description="usually a ${ENV} secret")
    login: bool = Field(
        True,
        description="send LOGIN <ups> after the credentials, which is when upsd checks them"
        " (the user needs 'upsmon secondary' in upsd.users)",
    )

    @model_validator(mode="after")
    def _credentials(self) -> NutOptions:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


def _number(text: str | None) -> int | float | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def ups_state(ups: str, values: Mapping[str, str]) -> dict[str, Any]:
    """The Ups capability state from upsd's variables (raw ones kept under ``vars``)."""
    flags, unknown = nut.parse_status(values.get("ups.status", ""))
    has = set(flags)
    # FSD is announced ahead of a shutdown; clients must treat it like OB LB
    on_battery = bool(has & {StatusFlag.OB, StatusFlag.FSD})
    battery_low = bool(has & {StatusFlag.LB, StatusFlag.FSD})
    if StatusFlag.OFF in has:
        status = "off"
    elif battery_low:
        status = "low_battery"
    elif on_battery:
        status = "on_battery"
    elif StatusFlag.BYPASS in has:
        status = "bypass"
    elif StatusFlag.OL in has:
        status = "online"
    else:
        status = "unknown"  # WAIT, or no status at all
    alarms = nut.split_alarms(values.get("ups.alarm", ""))
    if StatusFlag.ALARM in has and not alarms:
        alarms = ["ALARM"]
    runtime = _number(values.get("battery.runtime"))
    return {
        "status": status,
        "on_battery": on_battery,
        "battery_low": battery_low,
        "charge_percent": _number(values.get("battery.charge")),
        "runtime_s": runtime,
        "minutes_remaining": None if runtime is None else int(runtime // 60),
        "input_voltage": _number(values.get("input.voltage")),
        "output_voltage": _number(values.get("output.voltage")),
        "output_load_percent": _number(values.get("ups.load")),
        "alarms": alarms,
        "charging": StatusFlag.CHRG in has,
        "replace_battery": StatusFlag.RB in has,
        "overload": StatusFlag.OVER in has,
        "flags": [f.value for f in flags] + unknown,
        "ups": ups,
        "manufacturer": values.get("ups.mfr") or values.get("device.mfr"),
        "model": values.get("ups.model") or values.get("device.model"),
        "vars": dict(values),
    }


@register("nut")
class NutUps(Device[None]):
    """A UPS served by upsd; read-only (``refresh`` polls now)."""

    Options = NutOptions
    options: NutOptions
    capabilities = (Ups,)

    def __init__(self, config: DeviceConfig) -> None:
        super().__init__(config)
        transport = config.transport
        if not isinstance(transport, TcpTransport):
            raise DeviceConfigError(
                f"device {config.id!r} (nut) needs a tcp transport (upsd, port 3493),"
                f" not {transport.kind!r}"
            )
        self.transport = transport
        self.where = f"nut://{transport.host}:{transport.port}"
        self._client: nut.NutClient | None = None
        self._ups = self.options.ups or ""
        self._server = ""

    @contextlib.asynccontextmanager
    async def _upsd(self, doing: str) -> AsyncIterator[nut.NutClient]:
        """The connected client; upsd's errors become device errors with NUT's own code."""
        client = self._client
        if client is None or client.closed:
            raise DeviceUnavailable(f"device {self.id} is not connected to {self.where}")
        try:
            yield client
        except nut.NutError as err:
            raise DeviceUnavailable(f"upsd {doing}: {err}") from err
        except TimeoutError:
            raise DeviceTimeout(
                f"upsd at {self.where} did not answer {doing} within {self.config.timeout:g} s"
            ) from None
        except nut.NutProtocolError as err:
            raise DeviceUnavailable(f"upsd {doing}: garbled answer: {err}") from err
        except (ConnectionError, OSError) as err:
            raise DeviceUnavailable(f"upsd {doing}: {err or type(err).__name__}") from err

    async def _connect(self) -> None:
        try:
            self._client = await nut.NutClient.connect(
                self.transport.host, self.transport.port, limit=self.config.timeout
            )
        except TimeoutError:
            raise DeviceUnavailable(
                f"cannot open {self.where}: no answer within {self.config.timeout:g} s"
            ) from None
        except OSError as err:
            raise DeviceUnavailable(f"cannot open {self.where}: {err}") from err
        async with self._upsd("to VER") as client:
            self._server = await client.version()
        options = self.options
        if not self._ups:
            self._ups = await self._only_ups()
        if options.username is not None and options.password is not None:
            async with self._upsd(f"to USERNAME {options.username}") as client:
                await client.authenticate(options.username, options.password.get_secret_value())
            if options.login:
                async with self._upsd(f"LOGIN as {options.username!r}") as client:
                    await client.login(self._ups)
        self.log.debug("connected to %s (%s), UPS %s", self.where, self._server, self._ups)

    async def _only_ups(self) -> str:
        async with self._upsd("to LIST UPS") as client:
            served = await client.list_ups()
        if len(served) == 1:
            return next(iter(served))
        names = ", ".join(sorted(served)) or "none"
        raise DeviceConfigError(
            f"device {self.id}: upsd at {self.where} serves {len(served)} UPS ({names});"
            " set options.ups"
        )

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _fetch(self) -> Mapping[str, Any]:
        async with self._upsd(f"to LIST VAR {self._ups}") as client:
            values = await client.list_var(self._ups)
        state = ups_state(self._ups, values)
        state["server"] = self._server
        return state


__all__ = ["NutOptions", "NutUps", "ups_state"]
