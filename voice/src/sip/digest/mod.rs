//! Digest authentication (RFC 3261 §22, RFC 7616, RFC 8760) from stored HA1
//! hashes: the challenges a 401 carries and the check of an `Authorization`.
//!
//! The nonce is stateless: `<unix seconds, 16 hex><HMAC-SHA-256(key, seconds)
//! truncated to 128 bits, 32 hex>`, with a key drawn at process start. A
//! nonce is good for [`NONCE_LIFETIME_SECS`]; an older one is answered with a
//! fresh challenge carrying `stale=true`, so the phone retries without asking
//! its user. A restart invalidates every nonce, which costs one extra 401.
//!
//! rsipstack's typed `Authorization` refuses `algorithm=SHA-256` (it knows
//! only `SHA256`) and its own check wants the plaintext password, so the
//! header is parsed here.

use std::fmt::Write as _;

use engine::agent::SipCredentials;
use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// How long a nonce is accepted after it was issued.
pub const NONCE_LIFETIME_SECS: u64 = 300;

/// A nonce issued this far in the future is still taken (clock steps).
const NONCE_CLOCK_SKEW_SECS: u64 = 5;

/// The hash a challenge names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DigestAlgorithm {
    /// RFC 2617's; the only one older peers (sipp 3.6, baresip 1.0) know.
    #[serde(rename = "MD5")]
    Md5,
    /// RFC 7616 / RFC 8760.
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl DigestAlgorithm {
    /// The `algorithm=` token.
    pub fn token(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }

    /// Reads an `algorithm=` token; absent means MD5 (RFC 7616 §3.3).
    fn from_token(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("MD5") {
            Some(DigestAlgorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Some(DigestAlgorithm::Sha256)
        } else {
            None
        }
    }

    /// Lowercase hex of the hash of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            DigestAlgorithm::Md5 => hex(&Md5::digest(data)),
            DigestAlgorithm::Sha256 => hex(&Sha256::digest(data)),
        }
    }

    /// The stored HA1 for this algorithm.
    fn ha1(self, credentials: &SipCredentials) -> &str {
        match self {
            DigestAlgorithm::Md5 => &credentials.ha1_md5,
            DigestAlgorithm::Sha256 => &credentials.ha1_sha256,
        }
    }
}

/// The values of every `Authorization` header of `request`, in order.
pub fn authorizations(request: &rsipstack::sip::Request) -> Vec<&str> {
    request
        .headers
        .iter()
        .filter_map(|header| match header {
            rsipstack::sip::Header::Authorization(value) => Some(value.value()),
            _ => None,
        })
        .collect()
}

/// What is kept of a SIP password: `H(username:realm:password)` per algorithm.
pub fn credentials(username: &str, realm: &str, password: &str) -> SipCredentials {
    let secret = format!("{username}:{realm}:{password}");
    SipCredentials {
        realm: realm.to_owned(),
        ha1_md5: DigestAlgorithm::Md5.hash_hex(secret.as_bytes()),
        ha1_sha256: DigestAlgorithm::Sha256.hash_hex(secret.as_bytes()),
    }
}

/// The `response=` a client with `ha1` computes (RFC 7616 §3.4.1); `qop` is
/// `Some((nc, cnonce))` for `qop=auth` and `None` for RFC 2069 style.
pub fn expected_response(
    algorithm: DigestAlgorithm,
    ha1: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let ha2 = algorithm.hash_hex(format!("{method}:{uri}").as_bytes());
    let data = match qop {
        Some((nc, cnonce)) => format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"),
        None => format!("{ha1}:{nonce}:{ha2}"),
    };
    algorithm.hash_hex(data.as_bytes())
}

/// Why an `Authorization` header was not accepted; each is logged, none is
/// told to the peer beyond a new challenge.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    /// Basic, Bearer or anything but Digest.
    #[error("the authorization scheme is not Digest")]
    NotDigest,
    /// The parameters do not parse as `name=value, …`.
    #[error("the authorization header is malformed: {0}")]
    Malformed(String),
    /// A parameter the check needs is absent.
    #[error("the authorization has no `{0}`")]
    Missing(&'static str),
    /// An algorithm we do not implement (e.g. SHA-512-256).
    #[error("unsupported digest algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// An algorithm we implement but this server was configured not to offer.
    #[error("digest algorithm {0} is not offered here")]
    AlgorithmNotOffered(&'static str),
    /// `auth-int` or an unknown qop.
    #[error("unsupported qop `{0}`")]
    UnsupportedQop(String),
    /// `username` is not the identity being authenticated (e.g. the AOR).
    #[error("username `{got}` does not match `{expected}`")]
    UsernameMismatch {
        /// What the header says.
        got: String,
        /// Whom the request is for.
        expected: String,
    },
    /// Another realm than ours.
    #[error("realm `{0}` is not ours")]
    RealmMismatch(String),
    /// The credentials were hashed for another realm (set the password again).
    #[error("the stored credentials are for realm `{0}`, not ours")]
    CredentialsForOtherRealm(String),
    /// Not a nonce this process issued (or a forged one).
    #[error("the nonce was not issued here")]
    NonceInvalid,
    /// Ours, but older than [`NONCE_LIFETIME_SECS`]: challenge again with `stale=true`.
    #[error("the nonce has expired")]
    NonceExpired,
    /// `uri=` differs from the Request-URI.
    #[error("digest uri `{got}` does not match the request uri `{expected}`")]
    UriMismatch {
        /// The `uri=` parameter.
        got: String,
        /// The Request-URI.
        expected: String,
    },
    /// The hash does not match: a wrong password, most likely.
    #[error("the digest response does not match (wrong password?)")]
    ResponseMismatch,
}

impl DigestError {
    /// The client's password was fine but its nonce too old.
    pub fn is_stale(&self) -> bool {
        matches!(self, DigestError::NonceExpired)
    }
}

/// The parameters of a Digest `Authorization` (or `Proxy-Authorization`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestAuthorization {
    /// Who claims to be authenticating.
    pub username: String,
    /// The realm the client hashed with.
    pub realm: String,
    /// The nonce from our challenge.
    pub nonce: String,
    /// The digest URI (must equal the Request-URI).
    pub uri: String,
    /// The client's hash, lowercase hex.
    pub response: String,
    /// MD5 when the header names none.
    pub algorithm: DigestAlgorithm,
    /// `Some((nc, cnonce))` with `qop=auth`; `None` without qop.
    pub qop: Option<(String, String)>,
}

impl DigestAuthorization {
    /// Parses the value of an `Authorization` header.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest);
        }
        let params = parse_params(rest)?;
        let find = |name: &'static str| {
            params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        let require = |name: &'static str| find(name).ok_or(DigestError::Missing(name));
        let algorithm = match find("algorithm") {
            None => DigestAlgorithm::Md5,
            Some(token) => DigestAlgorithm::from_token(&token)
                .ok_or(DigestError::UnsupportedAlgorithm(token))?,
        };
        let qop = match find("qop") {
            None => None,
            Some(qop) if qop.eq_ignore_ascii_case("auth") => {
                Some((require("nc")?, require("cnonce")?))
            }
            Some(other) => return Err(DigestError::UnsupportedQop(other)),
        };
        Ok(DigestAuthorization {
            username: require("username")?,
            realm: require("realm")?,
            nonce: require("nonce")?,
            uri: require("uri")?,
            response: require("response")?.to_ascii_lowercase(),
            algorithm,
            qop,
        })
    }
}

/// `name=value` or `name="quoted \" value"`, separated by commas.
fn parse_params(text: &str) -> Result<Vec<(String, String)>, DigestError> {
    let mut params = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| DigestError::Malformed(format!("`{rest}` has no `=`")))?;
        let name = rest[..eq].trim();
        if name.is_empty() || name.contains([',', ' ', '"']) {
            return Err(DigestError::Malformed(format!(
                "bad parameter name `{name}`"
            )));
        }
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut unquoted = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((idx, ch)) = chars.next() {
                match ch {
                    '\\' => match chars.next() {
                        Some((_, escaped)) => unquoted.push(escaped),
                        None => break,
                    },
                    '"' => {
                        end = Some(idx);
                        break;
                    }
                    _ => unquoted.push(ch),
                }
            }
            let end = end.ok_or_else(|| {
                DigestError::Malformed(format!("the value of `{name}` has no closing quote"))
            })?;
            value = unquoted;
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        params.push((name.to_owned(), value));
        rest = match rest.strip_prefix(',') {
            Some(after) => after.trim_start(),
            None if rest.is_empty() => rest,
            None => {
                return Err(DigestError::Malformed(format!(
                    "expected `,` after `{name}`"
                )));
            }
        };
    }
    Ok(params)
}

/// Issues challenges and checks answers for one realm.
#[derive(Clone)]
pub struct DigestAuth {
    realm: String,
    algorithms: Vec<DigestAlgorithm>,
    /// Signs nonces; never leaves the process.
    nonce_key: [u8; 32],
}

impl std::fmt::Debug for DigestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestAuth")
            .field("realm", &self.realm)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl DigestAuth {
    /// A realm with a fresh random nonce key.
    pub fn new(realm: &str, algorithms: &[DigestAlgorithm]) -> Result<Self, getrandom::Error> {
        let mut nonce_key = [0u8; 32];
        getrandom::fill(&mut nonce_key)?;
        Ok(Self::with_key(realm, algorithms, nonce_key))
    }

    /// A realm with a given nonce key (tests).
    pub fn with_key(realm: &str, algorithms: &[DigestAlgorithm], nonce_key: [u8; 32]) -> Self {
        DigestAuth {
            realm: realm.to_owned(),
            algorithms: algorithms.to_vec(),
            nonce_key,
        }
    }

    /// The realm challenges name.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A nonce issued at `now_unix_secs`.
    pub fn nonce(&self, now_unix_secs: u64) -> String {
        let stamp = format!("{now_unix_secs:016x}");
        let mac = hmac_sha256(&self.nonce_key, stamp.as_bytes());
        format!("{stamp}{}", hex(&mac[..16]))
    }

    /// Checks a nonce's signature and age.
    fn check_nonce(&self, nonce: &str, now_unix_secs: u64) -> Result<(), DigestError> {
        if nonce.len() != 48 || !nonce.is_ascii() {
            return Err(DigestError::NonceInvalid);
        }
        let issued =
            u64::from_str_radix(&nonce[..16], 16).map_err(|_| DigestError::NonceInvalid)?;
        if !constant_time_eq(self.nonce(issued).as_bytes(), nonce.as_bytes()) {
            return Err(DigestError::NonceInvalid);
        }
        if issued > now_unix_secs + NONCE_CLOCK_SKEW_SECS {
            return Err(DigestError::NonceInvalid);
        }
        if now_unix_secs.saturating_sub(issued) > NONCE_LIFETIME_SECS {
            return Err(DigestError::NonceExpired);
        }
        Ok(())
    }

    /// `WWW-Authenticate` (or `Proxy-Authenticate`) values, one per
    /// configured algorithm in the configured order, sharing one nonce.
    pub fn challenges(&self, now_unix_secs: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now_unix_secs);
        self.algorithms
            .iter()
            .map(|algorithm| {
                let mut challenge = format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    self.realm,
                    algorithm.token()
                );
                if stale {
                    challenge.push_str(", stale=true");
                }
                challenge
            })
            .collect()
    }

    /// Checks `authorization` for a request with `method` and
    /// `request_uri`, made by `expected_username` whose stored hashes are
    /// `credentials`. Every field is checked before the hash, so the log
    /// says what was wrong; the hash comparison is constant-time.
    pub fn verify(
        &self,
        authorization: &DigestAuthorization,
        expected_username: &str,
        method: &str,
        request_uri: &str,
        credentials: &SipCredentials,
        now_unix_secs: u64,
    ) -> Result<(), DigestError> {
        if !self.algorithms.contains(&authorization.algorithm) {
            return Err(DigestError::AlgorithmNotOffered(
                authorization.algorithm.token(),
            ));
        }
        if authorization.username != expected_username {
            return Err(DigestError::UsernameMismatch {
                got: authorization.username.clone(),
                expected: expected_username.to_owned(),
            });
        }
        if authorization.realm != self.realm {
            return Err(DigestError::RealmMismatch(authorization.realm.clone()));
        }
        if credentials.realm != self.realm {
            return Err(DigestError::CredentialsForOtherRealm(
                credentials.realm.clone(),
            ));
        }
        self.check_nonce(&authorization.nonce, now_unix_secs)?;
        if !same_uri(&authorization.uri, request_uri) {
            return Err(DigestError::UriMismatch {
                got: authorization.uri.clone(),
                expected: request_uri.to_owned(),
            });
        }
        let expected = expected_response(
            authorization.algorithm,
            authorization.algorithm.ha1(credentials),
            method,
            &authorization.uri,
            &authorization.nonce,
            authorization
                .qop
                .as_ref()
                .map(|(nc, cnonce)| (nc.as_str(), cnonce.as_str())),
        );
        if constant_time_eq(expected.as_bytes(), authorization.response.as_bytes()) {
            Ok(())
        } else {
            Err(DigestError::ResponseMismatch)
        }
    }
}

/// The digest URI names the Request-URI, possibly spelled differently
/// (parameter order, case of the scheme): compare parsed when both parse.
fn same_uri(digest_uri: &str, request_uri: &str) -> bool {
    use rsipstack::sip::Uri;
    digest_uri == request_uri
        || matches!(
            (Uri::try_from(digest_uri), Uri::try_from(request_uri)),
            (Ok(a), Ok(b)) if a == b
        )
}

/// Equal bytes, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 2104 HMAC over SHA-256 (the `hmac` crate in the workspace is for
/// the older `digest` 0.10 that rsipstack's sha2 0.11 does not share).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block_key.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}"); // writing to a String cannot fail
    }
    out
}

#[cfg(test)]
mod tests;
