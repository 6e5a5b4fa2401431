//! The hold clip: bundled audio callers hear while queued or held.
//!
//! `voice/assets/hold.pcm` is raw 8 kHz mono 16-bit little-endian PCM written
//! by `voice/assets/make_hold_clip.py` (4 s, a whole number of 20 ms frames,
//! so it loops without a click). It is compiled in and encoded once, on first
//! use, to µ-law and A-law frames of one packet each.

use std::sync::LazyLock;

use super::g711;
use super::sdp::Codec;

/// Samples (and G.711 bytes) per 20 ms packet at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// The clip as compiled in.
const CLIP_PCM: &[u8] = include_bytes!("../../assets/hold.pcm");

/// One packet's payload.
pub type Frame = [u8; FRAME_SAMPLES];

/// The clip encoded per codec, built on first use.
struct EncodedClip {
    ulaw: Vec<Frame>,
    alaw: Vec<Frame>,
}

static CLIP: LazyLock<EncodedClip> = LazyLock::new(|| {
    let samples = clip_samples();
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
});

/// The clip's linear samples (a trailing partial frame is dropped when encoding).
pub fn clip_samples() -> Vec<i16> {
    CLIP_PCM
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect()
}

/// The clip as payloads of consecutive 20 ms packets in a codec; play them
/// in order and start again at the end.
pub fn frames(codec: Codec) -> &'static [Frame] {
    match codec {
        Codec::Pcmu => &CLIP.ulaw,
        Codec::Pcma => &CLIP.alaw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
