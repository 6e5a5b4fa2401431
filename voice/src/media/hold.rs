//! The bundled clips: hold audio callers hear while queued or held, and
//! the IVR menu prompt.
//!
//! `voice/assets/hold.pcm` and `prompt.pcm` are raw 8 kHz mono 16-bit
//! little-endian PCM written by `voice/assets/make_hold_clip.py` (4 s) and
//! `make_prompt_clip.py` (3 s), each a whole number of 20 ms frames so it
//! loops without a click. They are compiled in and encoded once, on first
//! use, to µ-law and A-law frames of one packet each.

use std::sync::LazyLock;
use std::time::Duration;

use tokio::time::Instant;

use super::g711;
use super::rtp::{HEADER_LEN, RtpHeader};
use super::sdp::{Codec, MediaFormat};

/// Samples (and G.711 bytes) per 20 ms packet at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// The hold clip as compiled in.
const CLIP_PCM: &[u8] = include_bytes!("../../assets/hold.pcm");
/// The IVR prompt as compiled in.
const PROMPT_PCM: &[u8] = include_bytes!("../../assets/prompt.pcm");

/// Which bundled clip a stream plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clip {
    /// Hold audio (queued, held, transferred).
    Hold,
    /// The IVR menu prompt.
    Prompt,
}

/// One packet's payload.
pub type Frame = [u8; FRAME_SAMPLES];

/// The clip encoded per codec, built on first use.
struct EncodedClip {
    ulaw: Vec<Frame>,
    alaw: Vec<Frame>,
}

static CLIP: LazyLock<EncodedClip> = LazyLock::new(|| encode_clip(&clip_samples()));
static PROMPT: LazyLock<EncodedClip> = LazyLock::new(|| encode_clip(&pcm_samples(PROMPT_PCM)));

fn encode_clip(samples: &[i16]) -> EncodedClip {
    let encode = |encoder: fn(&[i16], &mut [u8])| -> Vec<Frame> {
        samples
            .chunks_exact(FRAME_SAMPLES)
            .map(|chunk| {
                let mut frame = [0u8; FRAME_SAMPLES];
                encoder(chunk, &mut frame);
                frame
            })
            .collect()
    };
    EncodedClip {
        ulaw: encode(g711::ulaw_encode_all),
        alaw: encode(g711::alaw_encode_all),
    }
}

/// The hold clip's linear samples (a trailing partial frame is dropped when encoding).
pub fn clip_samples() -> Vec<i16> {
    pcm_samples(CLIP_PCM)
}

fn pcm_samples(pcm: &[u8]) -> Vec<i16> {
    pcm.chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect()
}

/// The hold clip as payloads of consecutive 20 ms packets in a codec; play
/// them in order and start again at the end.
pub fn frames(codec: Codec) -> &'static [Frame] {
    clip_frames(Clip::Hold, codec)
}

/// A clip as payloads of consecutive 20 ms packets in a codec.
pub fn clip_frames(clip: Clip, codec: Codec) -> &'static [Frame] {
    let encoded = match clip {
        Clip::Hold => &*CLIP,
        Clip::Prompt => &*PROMPT,
    };
    match codec {
        Codec::Pcmu => &encoded.ulaw,
        Codec::Pcma => &encoded.alaw,
    }
}

/// One packet of hold audio every 20 ms.
pub(crate) const PACKET_INTERVAL: Duration = Duration::from_millis(20);

/// How far hold audio may fall behind its schedule (a stalled runtime)
/// before it stops catching up in a burst and starts a new talkspurt.
const MAX_CATCH_UP: Duration = Duration::from_millis(200);

/// Generates the hold stream: one SSRC for the whole call, sequence +1
/// and timestamp +160 per packet, paced on an absolute 20 ms schedule.
pub(crate) struct HoldStream {
    codec: Codec,
    clip: Clip,
    frames: &'static [Frame],
    position: usize,
    payload_type: u8,
    ssrc: u32,
    /// Of the next packet.
    sequence: u16,
    /// Of the next packet.
    timestamp: u32,
    /// The next packet starts a talkspurt: marker bit, and a timestamp that
    /// accounts for the time since the last packet.
    talkspurt: bool,
    last_sent_at: Option<Instant>,
    next_send_at: Instant,
    packet: [u8; HEADER_LEN + FRAME_SAMPLES],
}

impl HoldStream {
    /// A stream with a random SSRC, sequence number and timestamp, due now.
    pub fn new(format: MediaFormat, now: Instant) -> HoldStream {
        HoldStream {
            codec: format.codec,
            clip: Clip::Hold,
            frames: frames(format.codec),
            position: 0,
            payload_type: format.payload_type,
            ssrc: crate::media::random_u32(),
            sequence: crate::media::random_u32() as u16,
            timestamp: crate::media::random_u32(),
            talkspurt: true,
            last_sent_at: None,
            next_send_at: now,
            packet: [0u8; HEADER_LEN + FRAME_SAMPLES],
        }
    }

    /// Plays `clip` from its start at the next packet (same SSRC and
    /// sequence: one stream per call).
    pub fn set_clip(&mut self, clip: Clip) {
        if clip != self.clip {
            self.clip = clip;
            self.frames = clip_frames(clip, self.codec);
            self.position = 0;
        }
    }

    /// (Re)starts playing now, as a new talkspurt.
    pub fn restart(&mut self, now: Instant) {
        self.talkspurt = true;
        self.next_send_at = now;
    }

    /// Builds the next packet and schedules the one after.
    pub fn next_packet(&mut self, now: Instant) -> &[u8] {
        if self.talkspurt
            && let Some(last_sent_at) = self.last_sent_at
        {
            // The timestamp already moved one packet on; add the packets
            // that were not sent during the gap.
            let gap = now.saturating_duration_since(last_sent_at);
            let periods = (gap.as_micros() / PACKET_INTERVAL.as_micros()).max(1) as u32;
            self.timestamp = self
                .timestamp
                .wrapping_add((periods - 1).wrapping_mul(FRAME_SAMPLES as u32));
        }
        let header = RtpHeader {
            marker: self.talkspurt,
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        header.write(&mut self.packet);
        self.packet[HEADER_LEN..].copy_from_slice(&self.frames[self.position]);
        self.position = (self.position + 1) % self.frames.len();
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES as u32);
        self.talkspurt = false;
        self.last_sent_at = Some(now);
        self.next_send_at += PACKET_INTERVAL;
        if now.saturating_duration_since(self.next_send_at) > MAX_CATCH_UP {
            // Too far behind to catch up: skip the missed packets and let
            // the next one start a talkspurt whose timestamp covers the gap.
            self.talkspurt = true;
            self.next_send_at = now + PACKET_INTERVAL;
        }
        &self.packet
    }

    /// When the next packet is due.
    pub fn next_send_at(&self) -> Instant {
        self.next_send_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::RtpPacket;

    #[test]
    fn clip_is_a_few_seconds_of_whole_frames() {
        assert_eq!(CLIP_PCM.len() % (2 * FRAME_SAMPLES), 0);
        let seconds = clip_samples().len() / 8000;
        assert!((2..=10).contains(&seconds), "{seconds} s");
        assert_eq!(
            frames(Codec::Pcmu).len() * FRAME_SAMPLES,
            clip_samples().len()
        );
        assert_eq!(frames(Codec::Pcma).len(), frames(Codec::Pcmu).len());
    }

    #[test]
    fn clip_is_audible_but_gentle() {
        let samples = clip_samples();
        let peak = samples
            .iter()
            .map(|sample| i32::from(*sample).abs())
            .max()
            .unwrap();
        assert!((4000..=16000).contains(&peak), "peak {peak}");
        // It starts and ends quietly, so looping does not click.
        assert!(samples[0].abs() < 200 && samples[samples.len() - 1].abs() < 400);
    }

    #[test]
    fn frames_decode_back_to_the_clip() {
        let samples = clip_samples();
        for (codec, decode) in [
            (Codec::Pcmu, g711::ulaw_decode as fn(u8) -> i16),
            (Codec::Pcma, g711::alaw_decode),
        ] {
            let decoded: Vec<i16> = frames(codec)
                .iter()
                .flatten()
                .map(|&code| decode(code))
                .collect();
            let worst = decoded
                .iter()
                .zip(&samples)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .max()
                .unwrap();
            assert!(worst < 600, "{codec:?}: worst error {worst}");
        }
    }

    fn player() -> HoldStream {
        let format = MediaFormat {
            codec: Codec::Pcma,
            payload_type: 8,
            telephone_event: None,
        };
        HoldStream::new(format, Instant::now())
    }

    fn header(packet: &[u8]) -> RtpHeader {
        RtpPacket::parse(packet).unwrap().header
    }

    #[tokio::test(start_paused = true)]
    async fn hold_packets_count_up_and_keep_the_schedule() {
        let mut player = player();
        let start = Instant::now();
        player.restart(start);
        let first = header(player.next_packet(start));
        assert!(first.marker);
        assert_eq!(first.payload_type, 8);
        for n in 1..10u32 {
            let due = player.next_send_at;
            assert_eq!(due, start + PACKET_INTERVAL * n, "no drift");
            // Even when woken late, the schedule stays absolute.
            let packet = header(player.next_packet(due + Duration::from_millis(3)));
            assert!(!packet.marker);
            assert_eq!(packet.ssrc, first.ssrc);
            assert_eq!(packet.sequence, first.sequence.wrapping_add(n as u16));
            assert_eq!(packet.timestamp, first.timestamp.wrapping_add(160 * n));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_is_a_talkspurt_whose_timestamp_covers_the_gap() {
        let mut player = player();
        let start = Instant::now();
        let first = header(player.next_packet(start));
        let second = header(player.next_packet(start + PACKET_INTERVAL));
        // 1 s in bridge mode, then hold again.
        let back = start + PACKET_INTERVAL + Duration::from_secs(1);
        player.restart(back);
        let third = header(player.next_packet(back));
        assert!(third.marker);
        assert_eq!(third.ssrc, first.ssrc);
        assert_eq!(third.sequence, second.sequence.wrapping_add(1));
        assert_eq!(third.timestamp, second.timestamp.wrapping_add(8000));
        assert_eq!(player.next_send_at, back + PACKET_INTERVAL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_longer_than_the_catch_up_starts_a_new_talkspurt() {
        let mut player = player();
        let start = Instant::now();
        let _ = player.next_packet(start);
        let late = start + Duration::from_millis(500);
        let _ = player.next_packet(late);
        assert!(player.talkspurt);
        assert_eq!(player.next_send_at, late + PACKET_INTERVAL);
    }

    #[test]
    fn the_prompt_is_its_own_clip_of_whole_frames() {
        let prompt = pcm_samples(PROMPT_PCM);
        assert_eq!(PROMPT_PCM.len() % (2 * FRAME_SAMPLES), 0);
        assert_eq!(prompt.len(), 3 * 8000);
        assert_eq!(
            clip_frames(Clip::Prompt, Codec::Pcmu).len() * FRAME_SAMPLES,
            prompt.len()
        );
        assert_ne!(
            clip_frames(Clip::Prompt, Codec::Pcma)[2],
            clip_frames(Clip::Hold, Codec::Pcma)[2]
        );
        let mut player = player();
        let now = Instant::now();
        let _ = player.next_packet(now);
        player.set_clip(Clip::Prompt);
        assert_eq!(
            &player.next_packet(now)[HEADER_LEN..],
            &clip_frames(Clip::Prompt, Codec::Pcma)[0][..],
            "a new clip starts at its beginning"
        );
    }

    #[test]
    fn frames_loop() {
        let mut player = player();
        let now = Instant::now();
        let frames = player.frames.len();
        let first_payload = player.next_packet(now)[HEADER_LEN..].to_vec();
        for _ in 1..frames {
            let _ = player.next_packet(now);
        }
        assert_eq!(&player.next_packet(now)[HEADER_LEN..], &first_payload[..]);
    }
}
