"""The media engine: RTP, codecs, the 20 ms mix-minus tick, recording.

How the conference layer drives it (mechanism only; policy stays in ``hub``)::

    engine = MediaEngine()
    await engine.start()
    engine.subscribe(on_media_event)            # TalkingStarted/Stopped, DtmfReceived, ...
    engine.create_conference("c1")
    info = await engine.add_leg("c1", LegSpec(leg_id="l1", codec="PCMU", remote=("10.0.0.5", 4000),
                                              sock=rtp_socket_offered_in_sdp, half_duplex=False))
    engine.set_mute("l1", True); engine.set_deafen(...); engine.set_listen_only(...)
    engine.set_gain("l1", input_db=-6); engine.send_dtmf("l1", "123#")
    engine.play_tone("c1", BUSY); await engine.play_file("c1", path, leg="l1")
    engine.start_recording("c1", directory, formats=("wav", "opus"), on_index=store_row)
    await engine.stop_recording("c1"); await engine.remove_leg("l1"); await engine.close()
"""

from media.announce import BEEP, BUSY, RINGBACK, Tone
from media.engine import ConferenceInfo, EngineStats, MediaEngine
from media.errors import (
    CodecError,
    MediaError,
    MediaStateError,
    RtpParseError,
    UnknownConference,
    UnknownLeg,
)
from media.events import (
    AnnouncementFinished,
    DtmfReceived,
    MediaEvent,
    MediaResumed,
    MediaTimeout,
    PeerBye,
    RateChanged,
    RecordingFailed,
    RecordingFinished,
    RecordingIndex,
    SourceChanged,
    TalkingStarted,
    TalkingStopped,
)
from media.leg import LegInfo, LegSpec, LegStats
from media.talk import TalkSettings
from media.transport import bind_rtp_pair

__all__ = [
    "BEEP",
    "BUSY",
    "RINGBACK",
    "AnnouncementFinished",
    "CodecError",
    "ConferenceInfo",
    "DtmfReceived",
    "EngineStats",
    "LegInfo",
    "LegSpec",
    "LegStats",
    "MediaEngine",
    "MediaError",
    "MediaEvent",
    "MediaResumed",
    "MediaStateError",
    "MediaTimeout",
    "PeerBye",
    "RateChanged",
    "RecordingFailed",
    "RecordingFinished",
    "RecordingIndex",
    "RtpParseError",
    "SourceChanged",
    "TalkSettings",
    "TalkingStarted",
    "TalkingStopped",
    "Tone",
    "UnknownConference",
    "UnknownLeg",
    "bind_rtp_pair",
]
