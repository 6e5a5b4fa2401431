//! QQ's callback signatures: ed25519, with a key pair derived from the
//! bot's AppSecret, both ways.
//!
//! - The platform signs every callback: `X-Signature-Ed25519` is the hex
//!   signature of `X-Signature-Timestamp` followed by the body's bytes.
//! - The bot proves it holds the AppSecret when the callback URL is set
//!   (op 13): it answers with the hex signature of `event_ts` followed by
//!   `plain_token`.
//!
//! The key's 32-byte seed is the AppSecret repeated until it is at least 32
//! bytes long, cut to 32 (the platform's signature guide; botgo's
//! `interaction/signature` does the same).

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::signature::SignatureError;

/// The header with the platform's signature, 128 hex digits.
pub const SIGNATURE_HEADER: &str = "X-Signature-Ed25519";
/// The header with the signed timestamp (unix seconds, as text).
pub const TIMESTAMP_HEADER: &str = "X-Signature-Timestamp";

/// The bot's key pair. Its `Debug` shows nothing of the key.
pub struct BotKey {
    signing: SigningKey,
}

impl fmt::Debug for BotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BotKey(<redacted>)")
    }
}

impl BotKey {
    /// The key pair of the bot whose AppSecret is `secret`; `None` for an
    /// empty secret, which has no key.
    pub fn from_secret(secret: &str) -> Option<BotKey> {
        if secret.is_empty() {
            return None;
        }
        let mut seed = [0u8; 32];
        for (byte, secret_byte) in seed.iter_mut().zip(secret.bytes().cycle()) {
            *byte = secret_byte;
        }
        Some(BotKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The public half: what the platform's signatures verify against.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The op 13 answer's `signature`: hex of the signature of
    /// `event_ts` followed by `plain_token`.
    pub fn sign_validation(&self, event_ts: &str, plain_token: &str) -> String {
        let message = [event_ts.as_bytes(), plain_token.as_bytes()].concat();
        hex(&self.signing.sign(&message).to_bytes())
    }

    /// Checks a callback's headers (their values, `None` when absent)
    /// against its body.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let missing = |header| SignatureError::Header {
            header,
            reason: "is missing",
        };
        let signature = signature.ok_or(missing(SIGNATURE_HEADER))?;
        let timestamp = timestamp.ok_or(missing(TIMESTAMP_HEADER))?;
        let signature = decode_signature(signature).ok_or(SignatureError::Header {
            header: SIGNATURE_HEADER,
            reason: "is not 128 hex digits",
        })?;
        let message = [timestamp.as_bytes(), body].concat();
        self.signing
            .verifying_key()
            .verify(&message, &signature)
            .map_err(|_| SignatureError::Header {
                header: SIGNATURE_HEADER,
                reason: "does not match the timestamp and body (a wrong AppSecret, or the body was changed)",
            })
    }
}

/// 128 hex digits (either case) as a signature.
fn decode_signature(text: &str) -> Option<Signature> {
    if text.len() != 128 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 64];
    for (idx, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[idx * 2..idx * 2 + 2], 16).ok()?;
    }
    Some(Signature::from_bytes(&bytes))
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The examples of the platform's own documentation (bot-docs,
    // `dev-prepare/interface-framework/sign.md` and `event-emit.md`).

    #[test]
    fn the_seed_is_the_secret_repeated_to_32_bytes() {
        // sign.md: secret `naOC0ocQE3shWLAfffVLB1rhYPG7` has the seed
        // `naOC0ocQE3shWLAfffVLB1rhYPG7naOC` and this public key.
        let key = BotKey::from_secret("naOC0ocQE3shWLAfffVLB1rhYPG7").unwrap();
        assert_eq!(key.signing.to_bytes(), *b"naOC0ocQE3shWLAfffVLB1rhYPG7naOC");
        assert_eq!(
            key.verifying_key().to_bytes(),
            [
                215, 195, 98, 254, 120, 174, 248, 31, 242, 50, 135, 180, 147, 98, 139, 93, 176, 42,
                60, 79, 227, 11, 33, 94, 77, 25, 96, 155, 93, 118, 103, 58
            ]
        );
        // Longer than 32 bytes: cut.
        let long = BotKey::from_secret(&"x".repeat(40)).unwrap();
        assert_eq!(long.signing.to_bytes(), [b'x'; 32]);
        assert!(BotKey::from_secret("").is_none());
    }

    #[test]
    fn a_callback_signed_with_the_derived_key_verifies() {
        // sign.md's example signature (`865ad13a…`) does not verify under
        // the example's own key, with pyca/cryptography or here, for any
        // spacing of its body we tried; the signature below is
        // pyca/cryptography's of that body and timestamp with that seed.
        let key = BotKey::from_secret("naOC0ocQE3shWLAfffVLB1rhYPG7").unwrap();
        let body = br#"{ "op": 0,"d": {}, "t": "GATEWAY_EVENT_NAME"}"#;
        let signature = "2eb9983ebb8bb209e78fd095942f58e442656656e7975d01e64f9023a84b7c964290fdd40e5500c33867ccfe9563b7e0b6bac0e1d42c13e787b304fd51f71102";
        assert_eq!(
            key.verify(Some("1725442341"), Some(signature), body),
            Ok(())
        );
        assert_eq!(
            key.verify(Some("1725442341"), Some(&signature.to_uppercase()), body),
            Ok(())
        );
        let mismatch = Err(SignatureError::Header {
            header: SIGNATURE_HEADER,
            reason: "does not match the timestamp and body (a wrong AppSecret, or the body was changed)",
        });
        assert_eq!(
            key.verify(Some("1725442342"), Some(signature), body),
            mismatch
        );
        assert_eq!(
            key.verify(Some("1725442341"), Some(signature), b"{}"),
            mismatch
        );
        let other = BotKey::from_secret("another-app-secret").unwrap();
        assert_eq!(
            other.verify(Some("1725442341"), Some(signature), body),
            mismatch
        );
    }

    #[test]
    fn the_platforms_example_validation_answer_is_reproduced() {
        // event-emit.md: secret `DG5g3B4j9X2KOErG`, plain_token
        // `Arq0D5A61EgUu4OxUvOp`, event_ts `1725442341`.
        let key = BotKey::from_secret("DG5g3B4j9X2KOErG").unwrap();
        assert_eq!(
            key.sign_validation("1725442341", "Arq0D5A61EgUu4OxUvOp"),
            "87befc99c42c651b3aac0278e71ada338433ae26fcb24307bdc5ad38c1adc2d01bcfcadc0842edac85e85205028a1132afe09280305f13aa6909ffc2d652c706"
        );
    }

    #[test]
    fn missing_or_malformed_headers_are_named() {
        let key = BotKey::from_secret("DG5g3B4j9X2KOErG").unwrap();
        let signature = key.sign_validation("1", "x");
        let check = |timestamp, signature, header, reason| {
            assert_eq!(
                key.verify(timestamp, signature, b"x"),
                Err(SignatureError::Header { header, reason })
            );
        };
        check(Some("1"), None, SIGNATURE_HEADER, "is missing");
        check(
            None,
            Some(signature.as_str()),
            TIMESTAMP_HEADER,
            "is missing",
        );
        check(
            Some("1"),
            Some("abcd"),
            SIGNATURE_HEADER,
            "is not 128 hex digits",
        );
        let not_hex = "g".repeat(128);
        check(
            Some("1"),
            Some(not_hex.as_str()),
            SIGNATURE_HEADER,
            "is not 128 hex digits",
        );
        // Multi-byte characters of the right byte length are not hex either.
        let wide = "é".repeat(64);
        check(
            Some("1"),
            Some(wide.as_str()),
            SIGNATURE_HEADER,
            "is not 128 hex digits",
        );
        assert_eq!(
            SignatureError::Header {
                header: SIGNATURE_HEADER,
                reason: "is missing"
            }
            .to_string(),
            "`X-Signature-Ed25519` is missing"
        );
        assert_eq!(format!("{key:?}"), "BotKey(<redacted>)");
    }
}
