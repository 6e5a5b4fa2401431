//! The registrar for agents' phones (RFC 3261 §10): an agent's phone
//! registers `sip:<agent id>@…` with digest authentication against the
//! agent's stored SIP credentials, and its Contact is where the agent's
//! calls ring until the binding expires.
//!
//! Answers: 401 with a challenge when the credentials are missing, wrong,
//! or the agent is unknown (the same answer, so a caller cannot tell which);
//! 423 with Min-Expires below the minimum; 200 with every binding and its
//! remaining expiry otherwise. A longer expiry than the maximum is granted
//! the maximum. `Contact: *` with `Expires: 0` removes all bindings.
//!
//! Other parts of the system watch phones through [`Registrar::subscribe`]
//! (a [`PhoneState`] whenever an agent's phone becomes reachable or not) and
//! ask [`Registrar::contact`] where to send an INVITE.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use engine::agent::SipCredentials;
use rsipstack::sip::headers::{Contact, MinExpires, WwwAuthenticate};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Request, StatusCode, Transport, Uri};
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::config::VoiceConfig;
use super::digest::{DigestAuth, DigestAuthorization, DigestError};

/// Where the registrar finds an agent's SIP credentials; the runtime
/// implements it over the store, tests with a map.
#[async_trait]
pub trait SipCredentialSource: Send + Sync + 'static {
    /// The agent's stored hashes; `Ok(None)` when the agent does not exist
    /// or has no SIP password; `Err` when the lookup itself failed.
    async fn sip_credentials(&self, agent_id: &str) -> Result<Option<SipCredentials>, String>;
}

/// How long registrations last, from `[voice]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryLimits {
    /// Below it: 423 Interval Too Brief.
    pub min_secs: u32,
    /// When the REGISTER names none.
    pub default_secs: u32,
    /// Above it: clamped.
    pub max_secs: u32,
}

impl ExpiryLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &VoiceConfig) -> Self {
        ExpiryLimits {
            min_secs: config.registration_min_expires_secs,
            default_secs: config.registration_default_expires_secs,
            max_secs: config.registration_max_expires_secs,
        }
    }
}

/// One registered Contact of an agent's phone.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Where INVITEs for the agent go (the Contact URI as registered).
    pub contact: Uri,
    /// The Contact URI as the phone wrote it, echoed back in the 200
    /// (rsipstack prints parameters in its own spelling, e.g. `transport=UDP`).
    pub contact_text: String,
    /// Where the REGISTER came from: differs from the Contact's host behind
    /// NAT, and is then the address that works.
    pub source: SocketAddr,
    /// The transport the REGISTER came over.
    pub transport: Transport,
    /// When the binding lapses unless refreshed.
    pub expires_at: Instant,
    /// RFC 3261 §10.3: a refresh comes with the same Call-ID.
    pub call_id: String,
}

/// An agent's phone became reachable, or stopped being.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneState {
    /// Whose phone.
    pub agent_id: String,
    /// At least one live binding.
    pub registered: bool,
}

/// The response the endpoint sends for a REGISTER.
#[derive(Debug, Clone)]
pub struct RegistrarReply {
    /// 200, 400, 401, 423, 500.
    pub status: StatusCode,
    /// Contact, WWW-Authenticate or Min-Expires headers to add.
    pub headers: Vec<Header>,
}

impl RegistrarReply {
    fn status(status: StatusCode) -> Self {
        RegistrarReply {
            status,
            headers: Vec::new(),
        }
    }
}

/// The bindings of every agent's phones; cheap to clone (shared).
#[derive(Clone)]
pub struct Registrar {
    inner: Arc<RegistrarInner>,
}

struct RegistrarInner {
    auth: DigestAuth,
    credentials: Arc<dyn SipCredentialSource>,
    limits: ExpiryLimits,
    /// Agent id → its live bindings, newest last.
    bindings: Mutex<HashMap<String, Vec<Binding>>>,
    changes: broadcast::Sender<PhoneState>,
    /// Wakes the expiry task when a binding was added (it may expire first).
    bindings_changed: Notify,
}

/// What a REGISTER's Contact headers ask for.
#[derive(Debug, Clone, PartialEq)]
enum ContactRequest {
    /// No Contact: list the bindings.
    Query,
    /// `*` (with Expires: 0): remove every binding.
    RemoveAll,
    /// Bind (or with expires 0, unbind) each.
    Bind(Vec<(Uri, String, Option<u32>)>),
}

impl Registrar {
    /// A registrar with no bindings.
    pub fn new(
        auth: DigestAuth,
        credentials: Arc<dyn SipCredentialSource>,
        limits: ExpiryLimits,
    ) -> Self {
        let (changes, _) = broadcast::channel(256);
        Registrar {
            inner: Arc::new(RegistrarInner {
                auth,
                credentials,
                limits,
                bindings: Mutex::new(HashMap::new()),
                changes,
                bindings_changed: Notify::new(),
            }),
        }
    }

    /// The newest live binding of `agent_id`'s phone: where to ring it.
    pub fn contact(&self, agent_id: &str) -> Option<Binding> {
        let now = Instant::now();
        let bindings = self.lock();
        bindings
            .get(agent_id)?
            .iter()
            .rev()
            .find(|binding| binding.expires_at > now)
            .cloned()
    }

    /// Whether `agent_id`'s phone has a live binding.
    pub fn is_registered(&self, agent_id: &str) -> bool {
        self.contact(agent_id).is_some()
    }

    /// Agents whose phones are registered now (a first picture to which
    /// [`Registrar::subscribe`]'s changes apply).
    pub fn registered_agents(&self) -> Vec<String> {
        let now = Instant::now();
        let mut agents: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, bindings)| bindings.iter().any(|b| b.expires_at > now))
            .map(|(agent, _)| agent.clone())
            .collect();
        agents.sort();
        agents
    }

    /// Every change of an agent's phone state from now on. A receiver that
    /// lags loses the oldest changes (`RecvError::Lagged`) and should
    /// re-read [`Registrar::registered_agents`].
    pub fn subscribe(&self) -> broadcast::Receiver<PhoneState> {
        self.inner.changes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Binding>>> {
        // A panic while holding the lock leaves whole bindings behind, never
        // half-written ones, so the map stays usable.
        self.inner
            .bindings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers a REGISTER that came from `source` over `transport`.
    pub async fn handle_register(
        &self,
        request: &Request,
        source: SocketAddr,
        transport: Transport,
    ) -> RegistrarReply {
        let agent_id = match request.to_header().and_then(|to| to.uri()) {
            Ok(uri) => match uri.auth {
                Some(auth) if !auth.user.is_empty() => auth.user,
                _ => {
                    debug!(%source, "register refused: the To URI has no user part");
                    return RegistrarReply::status(StatusCode::BadRequest);
                }
            },
            Err(error) => {
                debug!(%source, %error, "register refused: no usable To header");
                return RegistrarReply::status(StatusCode::BadRequest);
            }
        };
        let now_unix_secs = unix_secs();
        if let Err(error) = self.authenticate(request, &agent_id, now_unix_secs).await {
            return match error {
                AuthFailure::Lookup(error) => {
                    warn!(agent_id = %agent_id, %error, "register failed: credentials lookup failed");
                    RegistrarReply::status(StatusCode::ServerInternalError)
                }
                AuthFailure::Challenge { stale, reason } => {
                    info!(agent_id = %agent_id, %source, %reason, "register challenged");
                    self.challenge(now_unix_secs, stale)
                }
            };
        }
        let contacts = match parse_contacts(request) {
            Ok(contacts) => contacts,
            Err(reason) => {
                info!(agent_id = %agent_id, %source, %reason, "register refused: bad Contact");
                return RegistrarReply::status(StatusCode::BadRequest);
            }
        };
        let header_expires = match request.expires_header() {
            None => None,
            Some(expires) => match expires.value().trim().parse::<u32>() {
                Ok(secs) => Some(secs),
                Err(_) => {
                    info!(agent_id = %agent_id, %source, "register refused: Expires is not a number");
                    return RegistrarReply::status(StatusCode::BadRequest);
                }
            },
        };
        let call_id = request
            .call_id_header()
            .map(|call_id| call_id.value().to_owned())
            .unwrap_or_default();
        match contacts {
            ContactRequest::Query => {}
            ContactRequest::RemoveAll => {
                if header_expires != Some(0) {
                    info!(agent_id = %agent_id, "register refused: `Contact: *` without Expires: 0");
                    return RegistrarReply::status(StatusCode::BadRequest);
                }
                self.update(&agent_id, |bindings| bindings.clear());
                info!(agent_id = %agent_id, %source, "phone unregistered (all contacts)");
            }
            ContactRequest::Bind(contacts) => {
                let limits = self.inner.limits;
                let mut granted = Vec::with_capacity(contacts.len());
                for (uri, text, contact_expires) in contacts {
                    let asked = contact_expires
                        .or(header_expires)
                        .unwrap_or(limits.default_secs);
                    if asked != 0 && asked < limits.min_secs {
                        info!(agent_id = %agent_id, asked, min = limits.min_secs, "register refused: interval too brief");
                        return RegistrarReply {
                            status: StatusCode::IntervalTooBrief,
                            headers: vec![Header::MinExpires(MinExpires::new(
                                limits.min_secs.to_string(),
                            ))],
                        };
                    }
                    granted.push((uri, text, asked.min(limits.max_secs)));
                }
                let now = Instant::now();
                self.update(&agent_id, |bindings| {
                    for (uri, text, secs) in granted {
                        bindings.retain(|binding| binding.contact != uri);
                        if secs > 0 {
                            bindings.push(Binding {
                                contact: uri,
                                contact_text: text,
                                source,
                                transport,
                                expires_at: now + Duration::from_secs(secs.into()),
                                call_id: call_id.clone(),
                            });
                        }
                    }
                });
                info!(agent_id = %agent_id, %source, registered = self.is_registered(&agent_id), "phone registration updated");
            }
        }
        self.ok_with_bindings(&agent_id)
    }

    /// 401 with one challenge per configured algorithm.
    fn challenge(&self, now_unix_secs: u64, stale: bool) -> RegistrarReply {
        RegistrarReply {
            status: StatusCode::Unauthorized,
            headers: self
                .inner
                .auth
                .challenges(now_unix_secs, stale)
                .into_iter()
                .map(|challenge| Header::WwwAuthenticate(WwwAuthenticate::new(challenge)))
                .collect(),
        }
    }

    async fn authenticate(
        &self,
        request: &Request,
        agent_id: &str,
        now_unix_secs: u64,
    ) -> Result<(), AuthFailure> {
        let challenge = |reason: String, stale: bool| AuthFailure::Challenge { stale, reason };
        let values = super::digest::authorizations(request);
        if values.is_empty() {
            return Err(challenge("no credentials".into(), false));
        }
        let parsed: Vec<Result<DigestAuthorization, DigestError>> = values
            .iter()
            .map(|value| DigestAuthorization::parse(value))
            .collect();
        let authorization = match parsed
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .find(|a| a.realm == self.inner.auth.realm())
        {
            Some(authorization) => authorization,
            None => {
                let reason = match parsed.iter().find_map(|p| p.as_ref().err()) {
                    Some(error) => error.to_string(),
                    None => "no credentials for our realm".into(),
                };
                return Err(challenge(reason, false));
            }
        };
        let stored = self
            .inner
            .credentials
            .sip_credentials(agent_id)
            .await
            .map_err(AuthFailure::Lookup)?;
        let Some(stored) = stored else {
            // The same 401 as a wrong password: no telling who exists.
            return Err(challenge("unknown agent or no SIP password".into(), false));
        };
        self.inner
            .auth
            .verify(
                authorization,
                agent_id,
                request.method.to_string().as_str(),
                &request.uri.to_string(),
                &stored,
                now_unix_secs,
            )
            .map_err(|error| challenge(error.to_string(), error.is_stale()))
    }

    /// Applies `change` to `agent_id`'s bindings and announces a change of
    /// registered state.
    fn update(&self, agent_id: &str, change: impl FnOnce(&mut Vec<Binding>)) {
        let now = Instant::now();
        let (before, after) = {
            let mut all = self.lock();
            let bindings = all.entry(agent_id.to_owned()).or_default();
            let before = bindings.iter().any(|b| b.expires_at > now);
            change(bindings);
            bindings.retain(|b| b.expires_at > now);
            let after = !bindings.is_empty();
            if !after {
                all.remove(agent_id);
            }
            (before, after)
        };
        self.inner.bindings_changed.notify_one();
        if before != after {
            self.announce(agent_id, after);
        }
    }

    fn announce(&self, agent_id: &str, registered: bool) {
        let phones = metrics::gauge!(super::metrics::REGISTERED_PHONES);
        if registered {
            phones.increment(1.0);
        } else {
            phones.decrement(1.0);
        }
        // No subscriber is fine: nobody is watching phones right now.
        let _ = self.inner.changes.send(PhoneState {
            agent_id: agent_id.to_owned(),
            registered,
        });
    }

    /// 200 listing every live binding with the seconds it has left.
    fn ok_with_bindings(&self, agent_id: &str) -> RegistrarReply {
        let now = Instant::now();
        let headers = self
            .lock()
            .get(agent_id)
            .map(|bindings| {
                bindings
                    .iter()
                    .filter(|b| b.expires_at > now)
                    .map(|b| {
                        let left = b
                            .expires_at
                            .saturating_duration_since(now)
                            .as_secs_f64()
                            .ceil() as u64;
                        Header::Contact(Contact::new(format!(
                            "<{}>;expires={left}",
                            b.contact_text
                        )))
                    })
                    .collect()
            })
            .unwrap_or_default();
        RegistrarReply {
            status: StatusCode::OK,
            headers,
        }
    }

    /// Removes lapsed bindings at the moment they lapse (so
    /// [`Registrar::subscribe`] hears of it) until `cancel` fires.
    pub async fn run_expiry(&self, cancel: CancellationToken) {
        loop {
            let next = self
                .lock()
                .values()
                .flatten()
                .map(|binding| binding.expires_at)
                .min();
            let lapse = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.inner.bindings_changed.notified() => continue,
                _ = lapse => self.remove_lapsed(),
            }
        }
    }

    fn remove_lapsed(&self) {
        let now = Instant::now();
        let lapsed: Vec<String> = {
            let mut all = self.lock();
            let mut lapsed = Vec::new();
            all.retain(|agent, bindings| {
                bindings.retain(|b| b.expires_at > now);
                if bindings.is_empty() {
                    lapsed.push(agent.clone());
                }
                !bindings.is_empty()
            });
            lapsed
        };
        for agent_id in lapsed {
            info!(agent_id = %agent_id, "phone registration expired");
            self.announce(&agent_id, false);
        }
    }
}

enum AuthFailure {
    /// The credential source failed: 500, not a challenge.
    Lookup(String),
    /// 401 (with `stale=true` when only the nonce was old).
    Challenge { stale: bool, reason: String },
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Reads every Contact header (each may list several, comma-separated).
fn parse_contacts(request: &Request) -> Result<ContactRequest, String> {
    let values: Vec<&str> = request
        .headers
        .iter()
        .filter_map(|header| match header {
            Header::Contact(contact) => Some(contact.value()),
            _ => None,
        })
        .collect();
    let mut entries = Vec::new();
    for value in values {
        entries.extend(split_top_level(value));
    }
    if entries.is_empty() {
        return Ok(ContactRequest::Query);
    }
    if entries.iter().any(|entry| entry.trim() == "*") {
        if entries.len() > 1 {
            return Err("`*` must be the only Contact".into());
        }
        return Ok(ContactRequest::RemoveAll);
    }
    entries
        .into_iter()
        .map(parse_contact)
        .collect::<Result<Vec<_>, _>>()
        .map(ContactRequest::Bind)
}

/// Splits on commas outside `<…>` and quotes.
fn split_top_level(value: &str) -> Vec<&str> {
    let (mut parts, mut start, mut in_angle, mut in_quote) = (Vec::new(), 0, false, false);
    for (idx, ch) in value.char_indices() {
        match ch {
            '"' if !in_angle => in_quote = !in_quote,
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            ',' if !in_angle && !in_quote => {
                parts.push(&value[start..idx]);
                start = idx + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
        .into_iter()
        .filter(|part| !part.trim().is_empty())
        .collect()
}

/// `"Name" <sip:uri;uri-params>;expires=60` or `sip:uri;expires=60` (without
/// angle brackets every `;` parameter belongs to the header, RFC 3261 §20).
fn parse_contact(entry: &str) -> Result<(Uri, String, Option<u32>), String> {
    let entry = entry.trim();
    let (uri_text, params) = match (entry.find('<'), entry.rfind('>')) {
        (Some(open), Some(close)) if open < close => (&entry[open + 1..close], &entry[close + 1..]),
        (None, None) => match entry.find(';') {
            Some(semi) => (&entry[..semi], &entry[semi..]),
            None => (entry, ""),
        },
        _ => return Err(format!("unbalanced angle brackets in `{entry}`")),
    };
    let uri_text = uri_text.trim();
    let uri = Uri::try_from(uri_text).map_err(|error| format!("`{uri_text}`: {error}"))?;
    let mut expires = None;
    for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((name, value)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("expires")
        {
            let secs = value
                .trim()
                .trim_matches('"')
                .parse::<u32>()
                .map_err(|_| format!("expires `{value}` is not a number"))?;
            expires = Some(secs);
        }
    }
    Ok((uri, uri_text.to_owned(), expires))
}

#[cfg(test)]
mod tests;
