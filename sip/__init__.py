"""SIP signalling written here, sans-IO, with asyncio transports.

Message layer (pure, no I/O): ``sip.message`` (SipRequest, SipResponse, parse_message,
bad_request_response, create_response), ``sip.headers`` (Via, NameAddr, CSeq),
``sip.uri`` (SipUri, TelUri, AbsoluteUri), ``sip.framing`` (SipStreamFramer),
``sip.sdp`` and ``sip.offer_answer`` (RFC 4566 / RFC 3264).

Protocol core (pure): ``sip.transaction`` (the RFC 3261 section 17 state machines and
matching), ``sip.dialog`` (Dialog, AnswerRetransmission), ``sip.digest`` (DigestServer,
DigestClient), ``sip.hops`` (Address, Via stamping, next hops), ``sip.limits``.

On asyncio: ``sip.transport`` (TransportLayer: UDP/TCP/TLS), ``sip.stack`` (SipStack, the
user-agent core; ``sip.uas.IncomingRequest`` and ``sip.uac.OutgoingInvite`` are its
handles), ``sip.registrar`` (Registrar). Errors derive from ``sip.errors.SipError``.
"""
