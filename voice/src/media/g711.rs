//! G.711 µ-law and A-law (ITU-T G.711), the two codecs every phone speaks.
//!
//! Hand-written after the ITU reference encoders (the segment search of Sun's
//! public-domain `g711.c`), because each is a few lines and a crate would add
//! a dependency for less code than its manifest. Samples are 16-bit linear PCM;
//! µ-law works on 14 bits and A-law on 13, so the low bits are quantised away.
//!
//! The relay never transcodes: these functions encode the hold clip once
//! (see [`super::hold`]), decode in tests, and serve the supervised-call
//! mixer ([`super::mix`]), which decodes and encodes only where one phone
//! must hear two others.

/// Added to the magnitude before the µ-law segment search, so that every
/// segment starts at a power of two (G.711 §3.2, the "bias" of 33 in 14-bit
/// units, shifted to 16 bits).
const ULAW_BIAS: i32 = 0x84;

/// The largest magnitude µ-law represents once the bias is added.
const ULAW_CLIP: i32 = 32635;

/// Encodes one 16-bit linear sample to µ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let (sign, magnitude) = if sample < 0 {
        (0x80, -i32::from(sample))
    } else {
        (0x00, i32::from(sample))
    };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // biased is in 0x84..=0x7FFF: its highest set bit is 7..=14, the
    // segment (exponent) is that bit minus 7.
    let exponent = (31 - biased.leading_zeros() as i32) - 7;
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    // G.711 transmits µ-law with every bit inverted.
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Decodes one µ-law byte to a 16-bit linear sample.
pub fn ulaw_decode(code: u8) -> i16 {
    let code = !code;
    let exponent = i32::from((code >> 4) & 0x07);
    let mantissa = i32::from(code & 0x0F);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if code & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Upper bound of each A-law segment, in 13-bit units.
const ALAW_SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// Encodes one 16-bit linear sample to A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let value = i32::from(sample) >> 3;
    // G.711 transmits A-law with the even bits inverted (XOR 0x55); the
    // sign bit is set for positive samples.
    let (mask, magnitude) = if value >= 0 {
        (0xD5u8, value)
    } else {
        (0x55u8, -value - 1)
    };
    let segment = ALAW_SEGMENT_END
        .iter()
        .position(|&end| magnitude <= end)
        .expect("a 16-bit sample shifted to 13 bits is at most 0xFFF") as i32;
    let mantissa = if segment < 2 {
        (magnitude >> 1) & 0x0F
    } else {
        (magnitude >> segment) & 0x0F
    };
    ((segment << 4) as u8 | mantissa as u8) ^ mask
}

/// Decodes one A-law byte to a 16-bit linear sample.
pub fn alaw_decode(code: u8) -> i16 {
    let code = code ^ 0x55;
    let segment = u32::from((code & 0x70) >> 4);
    let mut magnitude = i32::from(code & 0x0F) << 4;
    magnitude = match segment {
        0 => magnitude + 8,
        1 => magnitude + 0x108,
        _ => (magnitude + 0x108) << (segment - 1),
    };
    if code & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// Encodes a buffer of samples to µ-law, one byte per sample.
pub fn ulaw_encode_all(samples: &[i16], out: &mut [u8]) {
    for (sample, code) in samples.iter().zip(out.iter_mut()) {
        *code = ulaw_encode(*sample);
    }
}

/// Encodes a buffer of samples to A-law, one byte per sample.
pub fn alaw_encode_all(samples: &[i16], out: &mut [u8]) {
    for (sample, code) in samples.iter().zip(out.iter_mut()) {
        *code = alaw_encode(*sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ulaw_values() {
        let cases: [(i16, u8); 6] = [
            (0, 0xFF),
            (-1, 0x7F),
            (32767, 0x80),
            (-32768, 0x00),
            (1000, 0xCE),
            (-1000, 0x4E),
        ];
        for (sample, code) in cases {
            assert_eq!(ulaw_encode(sample), code, "ulaw_encode({sample})");
        }
        let decoded: [(u8, i16); 5] = [
            (0xFF, 0),
            (0x7F, 0),
            (0x80, 32124),
            (0x00, -32124),
            (0xCE, 988),
        ];
        for (code, sample) in decoded {
            assert_eq!(ulaw_decode(code), sample, "ulaw_decode({code:#04x})");
        }
    }

    #[test]
    fn known_alaw_values() {
        let cases: [(i16, u8); 6] = [
            (0, 0xD5),
            (-1, 0x55),
            (32767, 0xAA),
            (-32768, 0x2A),
            (1000, 0xFA),
            (-1000, 0x7A),
        ];
        for (sample, code) in cases {
            assert_eq!(alaw_encode(sample), code, "alaw_encode({sample})");
        }
        let decoded: [(u8, i16); 5] = [
            (0xD5, 8),
            (0x55, -8),
            (0xAA, 32256),
            (0x2A, -32256),
            (0xFA, 1008),
        ];
        for (code, sample) in decoded {
            assert_eq!(alaw_decode(code), sample, "alaw_decode({code:#04x})");
        }
    }

    /// µ-law: segment `e` has steps of `2^(e+3)` and starts where the biased
    /// magnitude reaches `2^(e+7)`, so half a step is at most
    /// `(|x| + bias) / 32`; the clipped top (above 32635) stays within that too.
    #[test]
    fn ulaw_round_trip_is_within_quantisation_error_over_all_samples() {
        for sample in i16::MIN..=i16::MAX {
            let decoded = ulaw_decode(ulaw_encode(sample));
            let error = (i32::from(decoded) - i32::from(sample)).abs();
            let bound = ((i32::from(sample).abs() + ULAW_BIAS) / 32).max(4);
            assert!(
                error <= bound,
                "µ-law {sample} → {decoded}: error {error} > {bound}"
            );
            assert!(
                i32::from(decoded) * i32::from(sample) >= 0,
                "µ-law keeps the sign of {sample}"
            );
        }
    }

    /// A-law: segments 0 and 1 have steps of 16 (16-bit units), segment
    /// `s ≥ 1` has steps of `2^(s+4)` and starts at `2^(s+7)`, so half a
    /// step is at most `|x| / 16`, and 8 near zero.
    #[test]
    fn alaw_round_trip_is_within_quantisation_error_over_all_samples() {
        for sample in i16::MIN..=i16::MAX {
            let decoded = alaw_decode(alaw_encode(sample));
            let error = (i32::from(decoded) - i32::from(sample)).abs();
            let bound = (i32::from(sample).abs() / 16).max(8);
            assert!(
                error <= bound,
                "A-law {sample} → {decoded}: error {error} > {bound}"
            );
        }
    }

    #[test]
    fn every_code_decodes_and_reencodes_to_itself() {
        // Decoding yields a bucket's midpoint; encoding it must land in the
        // same bucket. µ-law 0x7F (negative zero) is the one exception: it
        // decodes to 0, which encodes as positive zero 0xFF.
        for code in 0..=u8::MAX {
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(
                ulaw_encode(ulaw_decode(code)),
                expected,
                "µ-law {code:#04x}"
            );
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
        }
    }

    #[test]
    fn buffers_encode_sample_by_sample() {
        let samples = [0i16, 1000, -1000, 32767];
        let mut ulaw = [0u8; 4];
        let mut alaw = [0u8; 4];
        ulaw_encode_all(&samples, &mut ulaw);
        alaw_encode_all(&samples, &mut alaw);
        assert_eq!(ulaw, [0xFF, 0xCE, 0x4E, 0x80]);
        assert_eq!(alaw, [0xD5, 0xFA, 0x7A, 0xAA]);
    }
}
