"""The media engine: RTP, codecs, the 20 ms mix-minus tick, recording."""
