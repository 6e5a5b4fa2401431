//! RTP packets (RFC 3550 §5.1) and RFC 4733 telephone-events (DTMF).
//!
//! Hand-written: the relay only needs to check that a datagram is RTP and read
//! a few fields in place, and hold audio only writes a 12-byte header, so a
//! crate would bring more than it saves. Nothing here allocates.

use thiserror::Error;

/// The only RTP version there is (RFC 3550 §5.1).
pub const RTP_VERSION: u8 = 2;

/// Length of the fixed header, before CSRCs and the extension.
pub const HEADER_LEN: usize = 12;

/// Why a datagram is not an RTP packet we can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Shorter than the fixed header, or than the part the header announces.
    #[error("rtp packet too short: {len} bytes, need at least {needed}")]
    TooShort {
        /// Bytes received.
        len: usize,
        /// Bytes the header (with its CSRCs and extension) needs.
        needed: usize,
    },
    /// The version bits are not 2 (STUN, RTCP muxing mistakes, garbage).
    #[error("rtp version {0}, expected 2")]
    BadVersion(u8),
    /// The padding count is zero or larger than the payload.
    #[error("rtp padding of {padding} bytes does not fit a payload of {payload} bytes")]
    BadPadding {
        /// The last byte of the packet, the padding count.
        padding: u8,
        /// Bytes between the header and the end of the packet.
        payload: usize,
    },
    /// An RFC 4733 telephone-event payload is 4 bytes.
    #[error("telephone-event payload of {0} bytes, expected at least 4")]
    ShortTelephoneEvent(usize),
}

/// The fields of an RTP header that switchboard reads or writes.
///
/// CSRCs and header extensions are skipped when parsing and never written:
/// switchboard is not a mixer, and relayed packets are forwarded as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Set on the first packet of a talkspurt: the receiver may resynchronise
    /// its jitter buffer there (hold audio sets it when it starts or resumes).
    pub marker: bool,
    /// The SDP payload type number (0 PCMU, 8 PCMA, dynamic for telephone-event).
    pub payload_type: u8,
    /// Increments by one per packet; detects loss and reordering.
    pub sequence: u16,
    /// Sampling instant of the first sample, in clock-rate units (8 kHz for G.711).
    pub timestamp: u32,
    /// Identifies the stream; a new SSRC means a new stream for the receiver.
    pub ssrc: u32,
}

/// A parsed RTP packet borrowing the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The fixed header.
    pub header: RtpHeader,
    /// The media, after CSRCs and extension, without padding.
    pub payload: &'a [u8],
}

impl RtpPacket<'_> {
    /// Parses a datagram as RTP, skipping CSRCs and the header extension.
    pub fn parse(datagram: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
        if datagram.len() < HEADER_LEN {
            return Err(RtpError::TooShort {
                len: datagram.len(),
                needed: HEADER_LEN,
            });
        }
        let version = datagram[0] >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = datagram[0] & 0x20 != 0;
        let has_extension = datagram[0] & 0x10 != 0;
        let csrc_count = usize::from(datagram[0] & 0x0F);
        let mut payload_start = HEADER_LEN + 4 * csrc_count;
        if has_extension {
            // 16-bit profile id, 16-bit length in 32-bit words, then the words.
            let needed = payload_start + 4;
            if datagram.len() < needed {
                return Err(RtpError::TooShort {
                    len: datagram.len(),
                    needed,
                });
            }
            let words =
                u16::from_be_bytes([datagram[payload_start + 2], datagram[payload_start + 3]]);
            payload_start = needed + 4 * usize::from(words);
        }
        if datagram.len() < payload_start {
            return Err(RtpError::TooShort {
                len: datagram.len(),
                needed: payload_start,
            });
        }
        let mut payload_end = datagram.len();
        if has_padding {
            let padding = datagram[datagram.len() - 1];
            let payload = payload_end - payload_start;
            if padding == 0 || usize::from(padding) > payload {
                return Err(RtpError::BadPadding { padding, payload });
            }
            payload_end -= usize::from(padding);
        }
        Ok(RtpPacket {
            header: RtpHeader::read_fixed(datagram),
            payload: &datagram[payload_start..payload_end],
        })
    }
}

impl RtpHeader {
    /// Reads the fixed fields; the caller has checked the length.
    fn read_fixed(datagram: &[u8]) -> RtpHeader {
        RtpHeader {
            marker: datagram[1] & 0x80 != 0,
            payload_type: datagram[1] & 0x7F,
            sequence: u16::from_be_bytes([datagram[2], datagram[3]]),
            timestamp: u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]),
            ssrc: u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]),
        }
    }

    /// Writes the 12-byte fixed header (no padding, extension or CSRCs) at
    /// the start of `out` and returns its length.
    ///
    /// # Panics
    /// If `out` is shorter than [`HEADER_LEN`]: callers write into their own
    /// packet buffers, so a short one is a bug, not input.
    pub fn write(&self, out: &mut [u8]) -> usize {
        out[0] = RTP_VERSION << 6;
        out[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7F);
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        HEADER_LEN
    }
}

/// An RFC 4733 §2.3 telephone-event payload: one DTMF key press in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// 0–9, 10 `*`, 11 `#`, 12–15 `A`–`D`; other codes are not DTMF.
    pub event: u8,
    /// Set on the last packets of the event (sent about three times).
    pub end: bool,
    /// Power level in −dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in timestamp units, from the event's timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Length of the payload.
    pub const LEN: usize = 4;

    /// Parses the first 4 bytes of a telephone-event payload (RFC 4733 allows
    /// several events in one packet only with redundancy, which we ignore).
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, RtpError> {
        if payload.len() < Self::LEN {
            return Err(RtpError::ShortTelephoneEvent(payload.len()));
        }
        Ok(TelephoneEvent {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3F,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    /// Writes the 4-byte payload.
    pub fn write(&self, out: &mut [u8; Self::LEN]) {
        out[0] = self.event;
        out[1] = (u8::from(self.end) << 7) | (self.volume & 0x3F);
        out[2..4].copy_from_slice(&self.duration.to_be_bytes());
    }

    /// The key this event stands for, if it is a DTMF key.
    pub fn digit(&self) -> Option<char> {
        match self.event {
            0..=9 => Some(char::from(b'0' + self.event)),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some(char::from(b'A' + self.event - 12)),
            _ => None,
        }
    }
}

/// One DTMF key press, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dtmf {
    /// `0`–`9`, `*`, `#`, `A`–`D`.
    pub digit: char,
    /// How long the key was held, in timestamp units (8 kHz: 160 = 20 ms);
    /// the last duration seen, so an event whose end was lost is shorter.
    pub duration: u16,
}

/// Turns a stream of telephone-event packets into digits, each once.
///
/// All packets of one key press carry the same RTP timestamp; the last one
/// has the end bit and is repeated (usually three times). A digit is reported
/// at its first end packet; an event that never shows its end (all end
/// packets lost) is reported when the next event starts.
#[derive(Debug, Default)]
pub struct DtmfDetector {
    /// Timestamp of the last digit reported: its repeats, and packets of
    /// events before it that arrive late, are ignored.
    reported: Option<u32>,
    /// The event seen but not yet ended: timestamp and latest payload.
    in_progress: Option<(u32, TelephoneEvent)>,
}

impl DtmfDetector {
    /// A detector that has seen nothing.
    pub fn new() -> DtmfDetector {
        DtmfDetector::default()
    }

    /// Feeds one telephone-event packet (the caller checked its payload type)
    /// and returns the digits it completes: at most the previous unfinished
    /// one and this one.
    pub fn push(&mut self, timestamp: u32, event: TelephoneEvent) -> [Option<Dtmf>; 2] {
        let mut digits = [None, None];
        // Repeats of a reported event, and late packets of earlier ones
        // (RTP timestamps wrap: compare in serial-number arithmetic).
        if let Some(reported) = self.reported
            && timestamp.wrapping_sub(reported) as i32 <= 0
        {
            return digits;
        }
        if let Some((started, unfinished)) = self.in_progress
            && started != timestamp
        {
            self.in_progress = None;
            self.reported = Some(started);
            digits[0] = dtmf(unfinished);
        }
        if event.end {
            self.in_progress = None;
            self.reported = Some(timestamp);
            digits[1] = dtmf(event);
        } else {
            self.in_progress = Some((timestamp, event));
        }
        digits
    }
}

fn dtmf(event: TelephoneEvent) -> Option<Dtmf> {
    event.digit().map(|digit| Dtmf {
        digit,
        duration: event.duration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(marker: bool, payload_type: u8) -> RtpHeader {
        RtpHeader {
            marker,
            payload_type,
            sequence: 0xBEEF,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x0102_0304,
        }
    }

    #[test]
    fn header_round_trips() {
        let mut buf = [0u8; 20];
        let written = header(true, 8).write(&mut buf);
        buf[12..20].copy_from_slice(b"payload!");
        assert_eq!(written, HEADER_LEN);
        assert_eq!(&buf[..4], &[0x80, 0x88, 0xBE, 0xEF]);
        let packet = RtpPacket::parse(&buf).unwrap();
        assert_eq!(packet.header, header(true, 8));
        assert_eq!(packet.payload, b"payload!");
    }

    /// One `check(datagram, expected)` per case: CSRCs, extension, padding
    /// and the ways a datagram fails to be RTP.
    #[test]
    fn parse_table() {
        fn check(datagram: &[u8], expected: Result<&[u8], RtpError>) {
            let parsed = RtpPacket::parse(datagram).map(|packet| packet.payload);
            assert_eq!(parsed, expected, "datagram {datagram:02x?}");
        }
        let fixed = [0x80, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7];
        let with = |first: u8, rest: &[u8]| {
            let mut datagram = fixed.to_vec();
            datagram[0] = first;
            datagram.extend_from_slice(rest);
            datagram
        };
        check(&fixed, Ok(&[]));
        check(&with(0x80, b"ab"), Ok(b"ab"));
        // Two CSRCs, then payload.
        check(&with(0x82, &[1, 1, 1, 1, 2, 2, 2, 2, b'x']), Ok(b"x"));
        // Extension of one word.
        check(&with(0x90, &[0xBE, 0xDE, 0, 1, 9, 9, 9, 9, b'y']), Ok(b"y"));
        // Padding: 3 bytes, the last holds the count.
        check(&with(0xA0, &[b'z', 0, 0, 3]), Ok(b"z"));
        check(
            &fixed[..11],
            Err(RtpError::TooShort {
                len: 11,
                needed: 12,
            }),
        );
        check(&with(0x40, &[]), Err(RtpError::BadVersion(1)));
        check(&with(0x00, b"STUN"), Err(RtpError::BadVersion(0)));
        check(
            &with(0x83, &[0; 8]),
            Err(RtpError::TooShort {
                len: 20,
                needed: 24,
            }),
        );
        check(
            &with(0x90, &[0xBE, 0xDE, 0, 2, 0, 0, 0, 0]),
            Err(RtpError::TooShort {
                len: 20,
                needed: 24,
            }),
        );
        check(
            &with(0x90, &[0xBE]),
            Err(RtpError::TooShort {
                len: 13,
                needed: 16,
            }),
        );
        check(
            &with(0xA0, &[b'z', 0]),
            Err(RtpError::BadPadding {
                padding: 0,
                payload: 2,
            }),
        );
        check(
            &with(0xA0, &[9]),
            Err(RtpError::BadPadding {
                padding: 9,
                payload: 1,
            }),
        );
    }

    #[test]
    fn telephone_event_round_trips_and_names_digits() {
        let event = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        let mut buf = [0u8; 4];
        event.write(&mut buf);
        assert_eq!(buf, [11, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&buf), Ok(event));
        assert_eq!(
            TelephoneEvent::parse(&buf[..3]),
            Err(RtpError::ShortTelephoneEvent(3))
        );
        let digits: String = (0..=16)
            .filter_map(|code| {
                TelephoneEvent {
                    event: code,
                    ..event
                }
                .digit()
            })
            .collect();
        assert_eq!(digits, "0123456789*#ABCD");
    }

    fn event(code: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event: code,
            end,
            volume: 10,
            duration,
        }
    }

    fn detect(packets: &[(u32, TelephoneEvent)]) -> Vec<Dtmf> {
        let mut detector = DtmfDetector::new();
        packets
            .iter()
            .flat_map(|&(timestamp, event)| detector.push(timestamp, event))
            .flatten()
            .collect()
    }

    #[test]
    fn repeated_end_packets_give_one_digit_each() {
        let mut packets = Vec::new();
        for (timestamp, code) in [(1000, 1), (9000, 2), (17000, 1)] {
            for duration in [160, 320, 480] {
                packets.push((timestamp, event(code, false, duration)));
            }
            for _ in 0..3 {
                packets.push((timestamp, event(code, true, 640)));
            }
        }
        let digits: String = detect(&packets).iter().map(|dtmf| dtmf.digit).collect();
        assert_eq!(digits, "121");
        assert!(detect(&packets).iter().all(|dtmf| dtmf.duration == 640));
    }

    #[test]
    fn an_event_whose_end_was_lost_is_reported_when_the_next_starts() {
        let digits = detect(&[
            (1000, event(5, false, 160)),
            (1000, event(5, false, 320)),
            (5000, event(6, false, 160)),
            (5000, event(6, true, 480)),
            // Neither the end's repeat nor a late packet of the first event
            // is a new digit.
            (5000, event(6, true, 480)),
            (1000, event(5, false, 480)),
            (9000, event(7, true, 160)),
        ]);
        assert_eq!(
            digits,
            [
                Dtmf {
                    digit: '5',
                    duration: 320
                },
                Dtmf {
                    digit: '6',
                    duration: 480
                },
                Dtmf {
                    digit: '7',
                    duration: 160
                }
            ]
        );
    }

    #[test]
    fn non_dtmf_events_are_not_digits() {
        assert!(detect(&[(1, event(32, true, 160))]).is_empty());
    }

    proptest! {
        #[test]
        fn parse_never_panics(datagram in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(packet) = RtpPacket::parse(&datagram) {
                prop_assert!(packet.payload.len() + HEADER_LEN <= datagram.len());
            }
        }

        #[test]
        fn written_headers_parse_back(marker: bool, payload_type in 0u8..128, sequence: u16, timestamp: u32, ssrc: u32) {
            let header = RtpHeader { marker, payload_type, sequence, timestamp, ssrc };
            let mut buf = [0u8; HEADER_LEN];
            header.write(&mut buf);
            prop_assert_eq!(RtpPacket::parse(&buf).unwrap().header, header);
        }
    }
}
