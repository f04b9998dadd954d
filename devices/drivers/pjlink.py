"""Projectors and displays over PJLink class 1 (TCP 4352): power, input, error status, lamp.

A wrong password is an ``auth-failed`` offline reason, and the driver does not knock again
for ``auth_retry`` seconds (no reconnect storm against the display's lock-out).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, SecretStr

from devices.base import DeviceOptions
from devices.capabilities import Display, Power, SelectInput
from devices.errors import DeviceCommandError, DeviceUnavailable
from devices.registry import register
from devices.stream import StreamDevice
from protocols import pjlink
from protocols.framing import Framer

AUTH_FAILED = "auth-failed"
REASONS = {
    pjlink.ErrorCode.ERR1: "undefined command",
    pjlink.ErrorCode.ERR2: "out of parameter (no such input or value)",
    pjlink.ErrorCode.ERR3: "unavailable time (the display is off, warming up or cooling down)",
    pjlink.ErrorCode.ERR4: "projector/display failure",
    pjlink.ErrorCode.ERRA: "authorization error",
}


class PjlinkOptions(DeviceOptions):
    password: SecretStr | None = Field(None, description="PJLink password (class 1 security)")
    auth_retry: float = Field(300.0, gt=0, description="s before trying again after ERRA")


def _answers(body: str) -> Callable[[pjlink.PjlinkMessage], bool]:
    def accepts(message: pjlink.PjlinkMessage) -> bool:
        if isinstance(message, pjlink.AuthError):
            return True
        return isinstance(message, pjlink.Response) and message.body == body

    return accepts


@register("pjlink")
class PjlinkDisplay(StreamDevice[Power | SelectInput, pjlink.PjlinkMessage]):
    """State (Display): ``power``, ``input``, ``errors``, ``name``, ``lamp_hours``; ``lamps``."""

    Options = PjlinkOptions
    options: PjlinkOptions
    capabilities = (Display,)
    transport_kinds = ("tcp",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._greeting: asyncio.Future[pjlink.Greeting] | None = None
        self._auth: str | None = None  # digest for the next command; None once used
        self._auth_failed_at: float | None = None
        self._auth_reason = ""
        self._name: str | None = None

    # --- connection -------------------------------------------------------------------

    async def _connect(self) -> None:
        if self._auth_failed_at is not None:
            waited = time.monotonic() - self._auth_failed_at
            if waited < self.options.auth_retry:
                raise DeviceUnavailable(self._auth_reason)  # the same reason: nobody is woken
        self._greeting = asyncio.get_running_loop().create_future()
        self._auth = None
        self._name = None
        await super()._connect()

    def _framer(self) -> Framer:
        return pjlink.pjlink_framer()

    def _decode(self, frame: bytes) -> pjlink.PjlinkMessage:
        message = pjlink.parse_message(frame)
        if isinstance(message, pjlink.AuthError):
            # before the display hangs up, so that the offline reason is this one
            self._auth_denied("wrong PJLink password (the display answered PJLINK ERRA)")
        return message

    def _auth_denied(self, reason: str) -> None:
        self._auth_failed_at = time.monotonic()
        retry = self.options.auth_retry
        self._auth_reason = f"{AUTH_FAILED}: {reason}; next try after {retry:g} s"
        self._link_lost(self._auth_reason)

    def _on_unsolicited(self, message: pjlink.PjlinkMessage) -> None:
        if isinstance(message, pjlink.Greeting):
            if self._greeting is not None and not self._greeting.done():
                self._greeting.set_result(message)
            return
        self.log.debug("unsolicited %r", message)

    async def _greet(self) -> None:
        assert self._greeting is not None
        try:
            async with asyncio.timeout(self.config.timeout):
                greeting = await asyncio.shield(self._greeting)
        except TimeoutError:
            reason = f"no PJLINK greeting within {self.config.timeout:g} s"
            self._link_lost(reason)
            raise DeviceUnavailable(f"device {self.id}: {reason}") from None
        if greeting.secured:
            password = self.options.password
            if password is None:
                self._auth_denied("the display requires a PJLink password; none is configured")
                raise DeviceUnavailable(self._auth_reason)
            assert greeting.random is not None
            self._auth = pjlink.digest(greeting.random, password.get_secret_value())
        self._greeting = None

    # --- requests ---------------------------------------------------------------------

    async def _send(self, command: pjlink.Command) -> pjlink.Response:
        """Send one command (with the digest if it is the first) and return a good answer."""
        auth, self._auth = self._auth, None
        reply = await self.transact(command.encode(auth), _answers(command.body))
        if isinstance(reply, pjlink.AuthError):
            raise DeviceUnavailable(self._auth_reason)
        assert isinstance(reply, pjlink.Response)
        error = reply.error
        if error is not None:
            raise DeviceCommandError(
                error.name, f"{REASONS[error]} (after {bytes(command).decode().strip()!r})"
            )
        return reply

    async def _fetch(self) -> Mapping[str, Any]:
        if self._greeting is not None:
            await self._greet()
        previous = self._snapshot.state
        power = pjlink.parse_power((await self._send(pjlink.query("POWR"))).data)
        source = previous.get("input")
        if power is pjlink.PowerState.ON:
            source = (await self._send(pjlink.query("INPT"))).data
        errors = pjlink.parse_error_status((await self._send(pjlink.query("ERST"))).data)
        try:
            lamps = pjlink.parse_lamps((await self._send(pjlink.query("LAMP"))).data)
        except DeviceCommandError as err:
            if err.code != "ERR1":
                raise
            lamps = []  # no lamp (laser, LED): ERR1 is the documented answer
        if self._name is None:
            self._name = (await self._send(pjlink.query("NAME"))).data
        return {
            "power": power.label,
            "input": source,
            "errors": errors,
            "name": self._name,
            "lamp_hours": lamps[0].hours if lamps else None,
            "lamps": [{"hours": lamp.hours, "on": lamp.on} for lamp in lamps],
        }

    async def _execute(self, command: Power | SelectInput) -> dict[str, Any]:
        if isinstance(command, Power):
            await self._send(pjlink.power(command.on))
            power = pjlink.parse_power((await self._send(pjlink.query("POWR"))).data)
            self._merge_state({"power": power.label})
            return {"power": power.label}
        await self._send(pjlink.select_input(command.input))
        self._merge_state({"input": command.input})
        return {"input": command.input}
