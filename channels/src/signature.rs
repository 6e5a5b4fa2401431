//! The `X-Switchboard-Signature` header, both ways: switchboard signs its
//! outbound webhooks with it, and the webhook channel checks it on what
//! platforms post in. One construction, written once:
//!
//! `X-Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`
//!
//! A header may carry several `v1=` values (a sender rotating its secret
//! signs with the old and the new one); one that matches is enough.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

/// The header's name.
pub const HEADER: &str = "X-Switchboard-Signature";

/// Why a signature header is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// No header at all.
    #[error("no `X-Switchboard-Signature` header")]
    Missing,
    /// The header is not `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`.
    #[error("`X-Switchboard-Signature` is not `t=<unix seconds>,v1=<hex>`: {0}")]
    Malformed(&'static str),
    /// `t` is too far in the past: a replay, or a request held up for too long.
    #[error(
        "signature timestamp is {age_secs} s old, over the {tolerance_secs} s tolerance (a replayed or delayed request)"
    )]
    Stale {
        /// Seconds between `t` and the receive time.
        age_secs: i64,
        /// The configured tolerance.
        tolerance_secs: u64,
    },
    /// `t` is too far in the future: the sender's clock is wrong.
    #[error(
        "signature timestamp is {ahead_secs} s in the future, over the {tolerance_secs} s tolerance (check the sender's clock)"
    )]
    Future {
        /// Seconds `t` is ahead of the receive time.
        ahead_secs: i64,
        /// The configured tolerance.
        tolerance_secs: u64,
    },
    /// No `v1` value is the HMAC of this body with this secret.
    #[error("no `v1` signature matches the body (wrong secret, or the body was changed)")]
    Mismatch,
    /// A platform's own signature header (QQ's `X-Signature-Ed25519`) is
    /// missing, malformed or does not match; names the header and says which.
    #[error("`{header}` {reason}")]
    Header {
        /// The header at fault.
        header: &'static str,
        /// What is wrong with it: `is missing`, `does not match …`.
        reason: &'static str,
    },
    /// A platform's own signature (WeChat's `signature` query parameter)
    /// is missing, malformed or does not match; the text says which.
    #[error("{0}")]
    Platform(String),
}

/// The `v1` signature of `body` at unix time `t` with `secret`, in lowercase hex.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    mac(secret, t, body)
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The whole header value for `body` signed at `t`: `t=<t>,v1=<hex>`.
pub fn header_value(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", sign(secret, t, body))
}

/// Checks `header` (its value, `None` when absent) against `body`: the
/// timestamp within `tolerance_secs` of `now_secs` either way, and one `v1`
/// value the HMAC of `"<t>." + body` with `secret`, compared in constant time.
pub fn verify(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed("a part has no `=`"));
        };
        match key {
            "t" if t.is_some() => return Err(SignatureError::Malformed("`t` is given twice")),
            "t" => {
                let value = value
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("`t` is not unix seconds"))?;
                t = Some(value);
            }
            "v1" => signatures.push(decode_hex(value).ok_or(SignatureError::Malformed(
                "a `v1` value is not 64 hex digits",
            ))?),
            // Other schemes (a future `v2`) are skipped, as a sender may
            // send several while receivers upgrade.
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed("no `t`"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no `v1`"));
    }
    let tolerance = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
    let age_secs = now_secs.saturating_sub(t);
    if age_secs > tolerance {
        return Err(SignatureError::Stale {
            age_secs,
            tolerance_secs,
        });
    }
    if -age_secs > tolerance {
        return Err(SignatureError::Future {
            ahead_secs: -age_secs,
            tolerance_secs,
        });
    }
    let expected = mac(secret, t, body);
    // `verify_slice` compares in constant time; every value is tried, so
    // the time taken does not tell which one came close.
    let n_matching = signatures
        .iter()
        .filter(|signature| expected.clone().verify_slice(signature).is_ok())
        .count();
    match n_matching {
        0 => Err(SignatureError::Mismatch),
        _ => Ok(()),
    }
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// 64 hex digits (either case) as 32 bytes.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef";
    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] =
        br#"{"id":"m1","from":"+8613800000001","text":"hi","sent_at":"2023-11-14T22:13:20Z"}"#;

    fn check(header: Option<&str>, body: &[u8], expected: Result<(), SignatureError>) {
        assert_eq!(
            verify(SECRET, header, body, NOW, 300),
            expected,
            "header {header:?}"
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // An independent computation of the same construction.
        let signature = sign(SECRET, NOW, b"{\"a\":1}");
        assert_eq!(signature.len(), 64);
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        mac.verify_slice(&decode_hex(&signature).unwrap()).unwrap();
        assert_ne!(signature, sign("another secret!!", NOW, b"{\"a\":1}"));
    }

    #[test]
    fn headers_are_accepted_or_refused_saying_why() {
        let good = header_value(SECRET, NOW, BODY);
        let wrong_secret = header_value("not the secret!!", NOW, BODY);
        let old = header_value(SECRET, NOW - 301, BODY);
        let future = header_value(SECRET, NOW + 301, BODY);
        let rotated = format!(
            "t={NOW},v1={},v1={}",
            sign("the old secret!!", NOW, BODY),
            sign(SECRET, NOW, BODY)
        );
        let upper = good
            .to_ascii_uppercase()
            .replace("T=", "t=")
            .replace("V1=", "v1=");
        let ok = Ok(());
        check(Some(&good), BODY, ok.clone());
        check(
            Some(&header_value(SECRET, NOW - 300, BODY)),
            BODY,
            ok.clone(),
        );
        check(
            Some(&header_value(SECRET, NOW + 300, BODY)),
            BODY,
            ok.clone(),
        );
        check(Some(&rotated), BODY, ok.clone());
        check(Some(&upper), BODY, ok.clone());
        check(Some(&format!("{good},v2=whatever")), BODY, ok);
        check(Some(&wrong_secret), BODY, Err(SignatureError::Mismatch));
        let tampered = String::from_utf8(BODY.to_vec())
            .unwrap()
            .replace("hi", "ho");
        check(
            Some(&good),
            tampered.as_bytes(),
            Err(SignatureError::Mismatch),
        );
        check(
            Some(&old),
            BODY,
            Err(SignatureError::Stale {
                age_secs: 301,
                tolerance_secs: 300,
            }),
        );
        check(
            Some(&future),
            BODY,
            Err(SignatureError::Future {
                ahead_secs: 301,
                tolerance_secs: 300,
            }),
        );
        check(None, BODY, Err(SignatureError::Missing));
        for (header, why) in [
            ("", "a part has no `=`"),
            ("v1=00", "a `v1` value is not 64 hex digits"),
            (
                &format!("t=soon,v1={}", sign(SECRET, NOW, BODY)),
                "`t` is not unix seconds",
            ),
            (&format!("v1={}", sign(SECRET, NOW, BODY)), "no `t`"),
            (&format!("t={NOW}"), "no `v1`"),
            (&format!("t={NOW},t={NOW}"), "`t` is given twice"),
        ] {
            check(Some(header), BODY, Err(SignatureError::Malformed(why)));
        }
    }

    #[test]
    fn the_messages_say_which_check_failed() {
        let stale = verify(
            SECRET,
            Some(&header_value(SECRET, NOW - 900, BODY)),
            BODY,
            NOW,
            300,
        );
        assert_eq!(
            stale.unwrap_err().to_string(),
            "signature timestamp is 900 s old, over the 300 s tolerance (a replayed or delayed request)"
        );
        let future = verify(
            SECRET,
            Some(&header_value(SECRET, NOW + 900, BODY)),
            BODY,
            NOW,
            300,
        );
        assert_eq!(
            future.unwrap_err().to_string(),
            "signature timestamp is 900 s in the future, over the 300 s tolerance (check the sender's clock)"
        );
    }
}
