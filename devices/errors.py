"""The device error hierarchy; errors carry the device's own code (Extron ``E13``, CAT ``?``)."""

from __future__ import annotations


class DeviceError(Exception):
    """Root of every error the devices package raises on purpose."""

    code: str = "device-error"


class DeviceNotFound(DeviceError, KeyError):
    """No device with this id is configured."""

    code = "not-found"

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        super().__init__(device_id)

    def __str__(self) -> str:
        return f"no device {self.device_id!r}"


class DeviceConfigError(DeviceError, ValueError):
    """A device's options are invalid for its driver."""

    code = "config"


class InvalidCommand(DeviceError, ValueError):
    """The command dict is not one the driver understands (nothing was sent)."""

    code = "invalid-command"


class DeviceUnavailable(DeviceError):
    """The device is offline, stopped, or the link dropped while the command was pending."""

    code = "unavailable"


class DeviceTimeout(DeviceUnavailable):
    """The device did not answer within the command timeout (after retries)."""

    code = "timeout"


class DeviceBusy(DeviceError):
    """The device's command queue is full; the command was refused, not queued."""

    code = "busy"


class DeviceCommandError(DeviceError):
    """The device rejected a command; ``code`` is the device's own error code."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")
