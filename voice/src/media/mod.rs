//! Media: SDP offers and answers, RTP packets, G.711, hold audio, the relay.
