//! WeChat's signatures and safe mode (安全模式), as the official account
//! platform's "message encryption" page describes them.
//!
//! - A signature is the lowercase hex SHA-1 of its parts sorted as byte
//!   strings and joined: `signature` of the Token, `timestamp` and `nonce`;
//!   in safe mode `msg_signature` of those and the `Encrypt` element.
//! - Safe mode encrypts with AES-256-CBC. The key is
//!   `base64_decode(EncodingAESKey + "=")` (32 bytes), the IV its first 16
//!   bytes. The plaintext is 16 random bytes, the message's length in 4
//!   bytes big-endian, the message (XML) and the account's AppID, padded
//!   PKCS#7-style to a multiple of 32 bytes; the ciphertext travels in
//!   base64.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use sha1::{Digest, Sha1};
use thiserror::Error;

type Aes256CbcEncryptor = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDecryptor = cbc::Decryptor<aes::Aes256>;

/// The length of an EncodingAESKey, in characters.
pub const ENCODING_AES_KEY_CHARS: usize = 43;

/// The padding's block: WeChat pads to 32 bytes, not AES's 16.
const PAD_BLOCK: usize = 32;

/// The random bytes that start a plaintext.
const RANDOM_BYTES: usize = 16;

/// The EncodingAESKey in base64 with its `=` put back. An EncodingAESKey
/// is 43 characters picked from 62, so its last one may carry bits past
/// the 32 bytes: a strict decoder would refuse a key the console made.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// The lowercase hex SHA-1 of `parts` sorted and joined.
pub fn signature(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let mut sha1 = Sha1::new();
    for part in sorted {
        sha1.update(part.as_bytes());
    }
    sha1.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `given` (any case) is `expected`, compared in constant time so that the
/// time taken does not tell how much of a forged signature was right.
pub fn signatures_match(expected: &str, given: &str) -> bool {
    let given = given.to_ascii_lowercase();
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Why an `Encrypt` element cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecryptError {
    /// It is not base64.
    #[error("is not base64")]
    NotBase64,
    /// Its length is not a whole number of AES blocks.
    #[error("is {n_bytes} bytes, not a whole number of 16-byte AES blocks")]
    NotBlocks {
        /// The ciphertext's length.
        n_bytes: usize,
    },
    /// What it decrypts to is not a WeChat plaintext: the key is not the
    /// one that encrypted it.
    #[error(
        "cannot be decrypted with settings.encoding_aes_key (is it the EncodingAESKey shown in the console?): {0}"
    )]
    WrongKey(&'static str),
    /// The message is not UTF-8.
    #[error("decrypts to a message that is not UTF-8")]
    NotUtf8,
    /// It was encrypted for another account.
    #[error("is for AppID `{found}`, not this account's `{expected}`")]
    WrongAppId {
        /// The AppID in the plaintext.
        found: String,
        /// `settings.app_id`.
        expected: String,
    },
}

/// One account's safe mode: its AES key and AppID.
#[derive(Clone)]
pub struct SafeMode {
    key: [u8; 32],
    app_id: String,
}

impl std::fmt::Debug for SafeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeMode")
            .field("key", &"<redacted>")
            .field("app_id", &self.app_id)
            .finish()
    }
}

impl SafeMode {
    /// The safe mode of account `app_id` with `encoding_aes_key` (43
    /// characters of a-z, A-Z, 0-9); the error says what is wrong with the key.
    pub fn new(encoding_aes_key: &str, app_id: &str) -> Result<SafeMode, String> {
        let n_chars = encoding_aes_key.chars().count();
        if n_chars != ENCODING_AES_KEY_CHARS {
            return Err(format!(
                "must be the {ENCODING_AES_KEY_CHARS}-character EncodingAESKey, not {n_chars} characters"
            ));
        }
        if !encoding_aes_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("must hold only a-z, A-Z and 0-9".into());
        }
        let decoded = KEY_BASE64
            .decode(format!("{encoding_aes_key}="))
            .map_err(|err| format!("is not base64: {err}"))?;
        let key: [u8; 32] = decoded
            .try_into()
            .map_err(|_| "does not decode to 32 bytes".to_string())?;
        Ok(SafeMode {
            key,
            app_id: app_id.to_string(),
        })
    }

    /// The message in `encrypted` (an `Encrypt` element's text), checked to
    /// be for this account's AppID.
    pub fn decrypt(&self, encrypted: &str) -> Result<String, DecryptError> {
        let mut bytes = STANDARD
            .decode(encrypted.trim())
            .map_err(|_| DecryptError::NotBase64)?;
        if bytes.is_empty() || bytes.len() % 16 != 0 {
            return Err(DecryptError::NotBlocks {
                n_bytes: bytes.len(),
            });
        }
        let plain = Aes256CbcDecryptor::new(&self.key.into(), self.iv().into())
            .decrypt_padded_mut::<NoPadding>(&mut bytes)
            .map_err(|_| DecryptError::NotBlocks { n_bytes: 0 })?;
        let n_padding = usize::from(*plain.last().expect("not empty: checked above"));
        if n_padding == 0 || n_padding > PAD_BLOCK || n_padding > plain.len() {
            return Err(DecryptError::WrongKey("the padding is not PKCS#7"));
        }
        let (content, padding) = plain.split_at(plain.len() - n_padding);
        if padding.iter().any(|&byte| usize::from(byte) != n_padding) {
            return Err(DecryptError::WrongKey("the padding is not PKCS#7"));
        }
        let Some(length) = content.get(RANDOM_BYTES..RANDOM_BYTES + 4) else {
            return Err(DecryptError::WrongKey("too short for a message length"));
        };
        let n_message = u32::from_be_bytes(length.try_into().expect("4 bytes")) as usize;
        let rest = &content[RANDOM_BYTES + 4..];
        if n_message > rest.len() {
            return Err(DecryptError::WrongKey("the message length is past the end"));
        }
        let (message, app_id) = rest.split_at(n_message);
        if app_id != self.app_id.as_bytes() {
            return Err(DecryptError::WrongAppId {
                found: String::from_utf8_lossy(app_id).chars().take(64).collect(),
                expected: self.app_id.clone(),
            });
        }
        String::from_utf8(message.to_vec()).map_err(|_| DecryptError::NotUtf8)
    }

    /// `message` encrypted for this account, in base64, starting with 16
    /// random bytes from the operating system.
    pub fn encrypt(&self, message: &str) -> String {
        let mut random = [0u8; RANDOM_BYTES];
        // Without OS randomness the first block only repeats between
        // messages; the scheme's security does not rest on it.
        let _ = getrandom::fill(&mut random);
        self.encrypt_with(random, message)
    }

    /// `message` encrypted with `random` as its first 16 bytes (fixed in
    /// tests, to compare with the official example).
    pub fn encrypt_with(&self, random: [u8; RANDOM_BYTES], message: &str) -> String {
        let n_message = u32::try_from(message.len()).expect("a message under 4 GiB");
        let mut plain = Vec::with_capacity(message.len() + self.app_id.len() + 2 * PAD_BLOCK);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&n_message.to_be_bytes());
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(self.app_id.as_bytes());
        let n_padding = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(n_padding as u8, n_padding));
        let n_plain = plain.len();
        let cipher = Aes256CbcEncryptor::new(&self.key.into(), self.iv().into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, n_plain)
            .expect("padded to whole blocks above");
        STANDARD.encode(cipher)
    }

    fn iv(&self) -> &[u8; 16] {
        self.key[..16].try_into().expect("32 bytes hold 16")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The official example (the sample code's test): key, AppID, the fixed
    // random bytes and the message, and what they encrypt to.
    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const APP_ID: &str = "wxb11529c136998cb6";
    const MESSAGE: &str = "我是中文abcd123";
    const ENCRYPTED: &str =
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==";

    #[test]
    fn the_official_example_encrypts_and_decrypts() {
        let safe = SafeMode::new(KEY, APP_ID).unwrap();
        assert_eq!(safe.encrypt_with(*b"aaaabbbbccccdddd", MESSAGE), ENCRYPTED);
        assert_eq!(safe.decrypt(ENCRYPTED).unwrap(), MESSAGE);
        // With OS randomness: another ciphertext each time, the same message.
        let once = safe.encrypt("<xml/>");
        assert_ne!(once, safe.encrypt("<xml/>"));
        assert_eq!(safe.decrypt(&once).unwrap(), "<xml/>");
        // Every padding length, 1 to 32 bytes.
        for n_chars in 0..40 {
            let message = "x".repeat(n_chars);
            assert_eq!(safe.decrypt(&safe.encrypt(&message)).unwrap(), message);
        }
    }

    #[test]
    fn the_signature_is_sha1_of_the_sorted_parts() {
        // Computed independently (Python's hashlib) for the example above.
        assert_eq!(
            signature(&["pamtest", "1409304348", "xxxxxx"]),
            "76480565cbe296026c53aaacd1ad523a1ddba24f"
        );
        assert_eq!(
            signature(&["pamtest", "1409304348", "xxxxxx", ENCRYPTED]),
            "82c962d39941aa48552f90ef55aa323dc620cc10"
        );
        assert_eq!(
            signature(&["xxxxxx", "pamtest", "1409304348"]),
            signature(&["1409304348", "xxxxxx", "pamtest"])
        );
        let good = "76480565cbe296026c53aaacd1ad523a1ddba24f";
        assert!(signatures_match(good, good));
        assert!(signatures_match(good, &good.to_ascii_uppercase()));
        assert!(!signatures_match(good, &good[1..]));
        assert!(!signatures_match(good, &good.replace('7', "8")));
    }

    #[test]
    fn what_cannot_be_decrypted_says_why() {
        let safe = SafeMode::new(KEY, APP_ID).unwrap();
        let other_account = SafeMode::new(KEY, "wx0000000000000000").unwrap();
        let other_key = SafeMode::new(&"A".repeat(43), APP_ID).unwrap();
        let check = |encrypted: &str, expected: DecryptError| {
            assert_eq!(safe.decrypt(encrypted), Err(expected), "{encrypted}");
        };
        check(
            &other_account.encrypt("hi"),
            DecryptError::WrongAppId {
                found: "wx0000000000000000".into(),
                expected: APP_ID.into(),
            },
        );
        check("not base64!", DecryptError::NotBase64);
        check("AAAA", DecryptError::NotBlocks { n_bytes: 3 });
        check("", DecryptError::NotBlocks { n_bytes: 0 });
        let wrong = safe.decrypt(&other_key.encrypt("hi")).unwrap_err();
        assert!(matches!(wrong, DecryptError::WrongKey(_)), "{wrong:?}");
        assert!(
            wrong
                .to_string()
                .starts_with("cannot be decrypted with settings.encoding_aes_key"),
            "{wrong}"
        );
    }

    #[test]
    fn keys_are_checked() {
        for (key, expected) in [
            (
                "short",
                "must be the 43-character EncodingAESKey, not 5 characters",
            ),
            (
                &format!("{}=", &KEY[..42]),
                "must hold only a-z, A-Z and 0-9",
            ),
        ] {
            assert_eq!(SafeMode::new(key, APP_ID).unwrap_err(), expected);
        }
        assert!(
            !format!("{:?}", SafeMode::new(KEY, APP_ID).unwrap()).contains("abcdef"),
            "the key is not in Debug"
        );
    }
}
