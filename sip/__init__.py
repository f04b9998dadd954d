"""SIP signalling written here, sans-IO, with asyncio transports.

Message layer (pure, no I/O): ``sip.message`` (SipRequest, SipResponse, parse_message,
bad_request_response, create_response), ``sip.headers`` (Via, NameAddr, CSeq),
``sip.uri`` (SipUri, TelUri, AbsoluteUri), ``sip.framing`` (SipStreamFramer),
``sip.sdp`` and ``sip.offer_answer`` (RFC 4566 / RFC 3264); all errors are
``sip.errors.SipParseError``.
"""
