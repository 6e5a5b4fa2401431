//! Signed tokens: `v1.<claims>.<signature>`, both parts base64url without
//! padding; the claims are JSON, the signature is HMAC-SHA256 over
//! `v1.<claims>` with the server's secret. A token says who its bearer is
//! (`sub`), what they are (`role`) and until when (`exp`, Unix seconds).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;

const VERSION: &str = "v1";

/// What the bearer of a token may do.
/// `clap::ValueEnum` lists the names in `switchboard token --help`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A customer (web or app): their own sessions only.
    Customer,
    /// An agent: sessions offered or assigned to them.
    Agent,
    /// A supervisor: like an agent, and reads everything in their groups.
    Supervisor,
    /// Configuration: rules, agents, groups; reads everything.
    Admin,
}

impl Role {
    /// Parses the name used on the command line and in tokens.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "customer" => Some(Role::Customer),
            "agent" => Some(Role::Agent),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Agents, supervisors and admins: the company's side.
    pub fn is_staff(self) -> bool {
        !matches!(self, Role::Customer)
    }
}

/// The signed content of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Customer id (customers), agent id (agents, supervisors) or a name (admins).
    pub sub: String,
    /// What the bearer may do.
    pub role: Role,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// Why a token was refused. The message is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// No token in the request.
    #[error("missing token: send `Authorization: Bearer <token>` or `?token=<token>`")]
    Missing,
    /// Not three dot-separated base64url parts with JSON claims.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match: forged, or signed with another secret.
    #[error("invalid token signature")]
    BadSignature,
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
}

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct TokenSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

impl TokenSigner {
    /// A signer with `key` (at least 32 bytes: callers validate).
    pub fn new(key: impl Into<Vec<u8>>) -> TokenSigner {
        TokenSigner { key: key.into() }
    }

    /// The key from `secret` if set, else from `path`, creating that file
    /// with 32 random bytes (hex) and mode 0600 if it does not exist.
    pub fn from_secret_or_file(secret: &str, path: &Path) -> anyhow::Result<TokenSigner> {
        use anyhow::Context as _;
        if !secret.is_empty() {
            return Ok(TokenSigner::new(secret.as_bytes()));
        }
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = text.trim();
                anyhow::ensure!(
                    key.len() >= 32,
                    "secret file {} holds fewer than 32 characters",
                    path.display()
                );
                Ok(TokenSigner::new(key.as_bytes()))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)
                    .map_err(|err| anyhow::anyhow!("no randomness for the secret: {err}"))?;
                let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("failed to create {}", parent.display()))?;
                }
                write_private(path, &key)
                    .with_context(|| format!("failed to write secret file {}", path.display()))?;
                Ok(TokenSigner::new(key.into_bytes()))
            }
            Err(err) => {
                Err(err).with_context(|| format!("failed to read secret file {}", path.display()))
            }
        }
    }

    /// A token for `claims`.
    pub fn mint(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(payload));
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&signed).finalize().into_bytes());
        format!("{signed}.{signature}")
    }

    /// The claims of `token` if it is ours and not expired at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (version, payload) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if version != VERSION {
            return Err(TokenError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        self.mac(signed)
            .verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    fn mac(&self, signed: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac takes any key length");
        mac.update(signed.as_bytes());
        mac
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "li.na".into(),
            role: Role::Agent,
            exp,
        }
    }

    #[test]
    fn tokens_verify_only_when_intact_ours_and_current() {
        let signer = TokenSigner::new(*b"0123456789abcdef0123456789abcdef");
        let other = TokenSigner::new(*b"ffffffffffffffffffffffffffffffff");
        let token = signer.mint(&claims(1_000));
        let (signed, _) = token.rsplit_once('.').unwrap();
        let forged_claims = format!(
            "v1.{}",
            URL_SAFE_NO_PAD.encode(br#"{"sub":"li.na","role":"admin","exp":1000}"#)
        );
        let (_, signature) = token.rsplit_once('.').unwrap();
        let cases: Vec<(String, Result<Claims, TokenError>)> = vec![
            (token.clone(), Ok(claims(1_000))),
            (other.mint(&claims(1_000)), Err(TokenError::BadSignature)),
            (
                format!("{forged_claims}.{signature}"),
                Err(TokenError::BadSignature),
            ),
            (format!("{signed}.AAAA"), Err(TokenError::BadSignature)),
            (format!("{signed}.!!"), Err(TokenError::Malformed)),
            ("v1.abc".into(), Err(TokenError::Malformed)),
            ("nonsense".into(), Err(TokenError::Malformed)),
            (token.replacen("v1", "v2", 1), Err(TokenError::Malformed)),
        ];
        for (token, expected) in cases {
            assert_eq!(signer.verify(&token, 999), expected, "{token}");
        }
        assert_eq!(signer.verify(&token, 1_000), Err(TokenError::Expired));
    }

    fn role() -> impl proptest::strategy::Strategy<Value = Role> {
        proptest::sample::select(vec![
            Role::Customer,
            Role::Agent,
            Role::Supervisor,
            Role::Admin,
        ])
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_verifies(text in "\\PC*|v1\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,50}") {
            let signer = TokenSigner::new(*b"0123456789abcdef0123456789abcdef");
            proptest::prop_assert!(signer.verify(&text, 0).is_err());
        }

        #[test]
        fn minted_tokens_verify_to_their_claims(
            sub in "\\PC{0,40}",
            role in role(),
            exp in 1..i64::MAX,
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 32..64),
        ) {
            let signer = TokenSigner::new(key);
            let claims = Claims { sub, role, exp };
            let token = signer.mint(&claims);
            proptest::prop_assert_eq!(signer.verify(&token, exp - 1), Ok(claims));
            proptest::prop_assert_eq!(signer.verify(&token, exp), Err(TokenError::Expired));
        }

        #[test]
        fn a_token_changed_in_one_character_never_verifies(
            sub in "\\PC{0,40}",
            role in role(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            replacement in proptest::prelude::any::<char>(),
        ) {
            let signer = TokenSigner::new(*b"0123456789abcdef0123456789abcdef");
            let token = signer.mint(&Claims { sub, role, exp: 1_000 });
            let chars: Vec<char> = token.chars().collect();
            let at = at.index(chars.len());
            proptest::prop_assume!(chars[at] != replacement);
            let mut changed = chars.clone();
            changed[at] = replacement;
            let changed: String = changed.into_iter().collect();
            proptest::prop_assert!(signer.verify(&changed, 0).is_err(), "{}", changed);
        }
    }

    #[test]
    fn the_secret_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/auth.secret");
        let first = TokenSigner::from_secret_or_file("", &path).unwrap();
        let token = first.mint(&claims(10));
        let second = TokenSigner::from_secret_or_file("", &path).unwrap();
        assert_eq!(second.verify(&token, 0), Ok(claims(10)));
        let configured =
            TokenSigner::from_secret_or_file("a-configured-secret-of-32-chars!!", &path).unwrap();
        assert_eq!(configured.verify(&token, 0), Err(TokenError::BadSignature));
    }
}
