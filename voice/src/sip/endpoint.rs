//! The SIP endpoint: rsipstack listening on UDP and TCP (one address), and
//! the loop that answers every new server transaction.
//!
//! | request                                  | answer                                   |
//! |------------------------------------------|------------------------------------------|
//! | in-dialog (BYE, INFO, re-INVITE, …)      | the dialog handles it                    |
//! | with a To tag but no such dialog         | 481                                      |
//! | OPTIONS                                  | 200 with Allow                           |
//! | REGISTER                                 | the [`Registrar`]                        |
//! | INVITE over the source's rate            | 503 with Retry-After                     |
//! | INVITE refused by the [`TrunkPolicy`]    | 403, or 401 with a challenge             |
//! | INVITE beyond `max_calls`                | 503                                      |
//! | INVITE accepted                          | 100 Trying, then the [`CallHandler`]     |
//! | anything else                            | 405 with Allow                           |
//!
//! rsipstack itself answers retransmissions from its transaction cache,
//! absorbs stray ACKs, answers a CANCEL without a transaction with 481, and
//! drops what does not parse (no 400; see `tests/sip_malformed.rs`).
//!
//! rsipstack logs every datagram it sends and receives at `info`, raw text
//! included: run with [`LOG_FILTER_DIRECTIVE`] in the log filter.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rsipstack::EndpointBuilder;
use rsipstack::dialog::dialog::Dialog;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::headers::{Allow, RetryAfter, WwwAuthenticate};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, Param, StatusCode, Transport, Uri};
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::tcp_listener::TcpListenerConnection;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipConnection, TransportLayer};
use thiserror::Error;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::call::{CallHandler, CallSlots, DialogIdCell, Dialogs, IncomingCall};
use super::config::VoiceConfig;
use super::digest::DigestAuth;
use super::rate::RateLimiter;
use super::registrar::{ExpiryLimits, Registrar, SipCredentialSource};
use super::trunk::{TrunkDecision, TrunkPolicy};

/// Add to the tracing filter: keeps rsipstack's warnings, drops its
/// per-packet `info` lines (each one carries the whole raw message).
pub const LOG_FILTER_DIRECTIVE: &str = "rsipstack=warn";

/// The methods we answer outside a dialog or that a dialog handles.
pub const ALLOWED_METHODS: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK";

/// Our name in User-Agent and Server headers.
const USER_AGENT: &str = "switchboard";

/// Why the endpoint did not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// A `[voice]` key is wrong.
    #[error("config key `{key}`: {reason}")]
    Config {
        /// Dotted key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The listen address is taken or not ours.
    #[error("failed to listen on {transport} {addr}: {reason}")]
    Listen {
        /// UDP or TCP.
        transport: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS's or rsipstack's error.
        reason: String,
    },
    /// The OS has no randomness for the nonce key.
    #[error("failed to draw the digest nonce key: {0}")]
    Random(String),
}

/// A running SIP endpoint.
pub struct SipEndpoint {
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    registrar: Registrar,
    dialogs: Dialogs,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for SipEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipEndpoint")
            .field("udp_addr", &self.udp_addr)
            .field("tcp_addr", &self.tcp_addr)
            .finish_non_exhaustive()
    }
}

/// What every request handler shares.
struct Router {
    registrar: Registrar,
    trunks: TrunkPolicy,
    invite_rate: Mutex<RateLimiter>,
    call_slots: CallSlots,
    calls: Arc<dyn CallHandler>,
    dialogs: Dialogs,
}

impl SipEndpoint {
    /// Validates `config`, binds UDP and TCP on `config.listen` (the same
    /// port for both; with port 0 the OS picks one) and starts serving until
    /// `cancel` fires or [`SipEndpoint::shutdown`] is called.
    pub async fn start(
        config: &VoiceConfig,
        credentials: Arc<dyn SipCredentialSource>,
        calls: Arc<dyn CallHandler>,
        cancel: CancellationToken,
    ) -> Result<Self, StartError> {
        let config_error =
            |(key, reason): (&'static str, String)| StartError::Config { key, reason };
        config.validate().map_err(config_error)?;
        let public_ip = config.public_ip().map_err(config_error)?;
        let auth = DigestAuth::new(&config.realm, &config.digest_algorithms)
            .map_err(|error| StartError::Random(error.to_string()))?;
        let trunks = TrunkPolicy::new(config, auth.clone()).map_err(config_error)?;

        let (udp_socket, tcp_addr) = bind_same_port(config.listen)?;
        let udp_addr = udp_socket
            .local_addr()
            .map_err(|error| StartError::Listen {
                transport: "UDP",
                addr: config.listen,
                reason: error.to_string(),
            })?;
        let public = SocketAddr::new(public_ip, udp_addr.port());

        let transport_layer = TransportLayer::new(cancel.child_token());
        let udp = UdpConnection::attach(
            rsipstack::transport::udp::UdpInner {
                conn: Arc::new(udp_socket),
                addr: rsipstack::transport::SipAddr {
                    r#type: Some(Transport::Udp),
                    addr: udp_addr.into(),
                },
            },
            Some(public),
            Some(cancel.child_token()),
        )
        .await;
        transport_layer.add_transport(SipConnection::Udp(udp));
        let tcp = TcpListenerConnection::new(tcp_addr, Some(public))
            .await
            .map_err(|error| StartError::Listen {
                transport: "TCP",
                addr: tcp_addr,
                reason: error.to_string(),
            })?;
        transport_layer.add_transport(SipConnection::TcpListener(tcp));

        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.child_token())
            .with_transport_layer(transport_layer)
            .with_user_agent(USER_AGENT)
            .with_option(EndpointOption::default())
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|error| StartError::Listen {
                transport: "UDP",
                addr: udp_addr,
                reason: error.to_string(),
            })?;
        let layer = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let tasks = TaskTracker::new();
        let dialogs = Dialogs {
            layer,
            contact: our_uri(public, None),
            tasks: tasks.clone(),
            cancel: cancel.clone(),
        };
        let registrar = Registrar::new(auth, credentials, ExpiryLimits::from_config(config));
        let router = Arc::new(Router {
            registrar: registrar.clone(),
            trunks,
            invite_rate: Mutex::new(RateLimiter::new(
                config.invite_rate_per_sec,
                config.invite_rate_burst,
            )),
            call_slots: CallSlots::new(config.max_calls),
            calls,
            dialogs: dialogs.clone(),
        });

        tasks.spawn(cancel.clone().run_until_cancelled_owned(async move {
            endpoint.serve().await;
        }));
        tasks.spawn(registrar.clone().run_expiry_owned(cancel.clone()));
        tasks.spawn(serve_transactions(
            router,
            incoming,
            tasks.clone(),
            cancel.clone(),
        ));
        info!(udp = %udp_addr, tcp = %tcp_addr, public = %public, "SIP endpoint listening");
        Ok(SipEndpoint {
            udp_addr,
            tcp_addr,
            registrar,
            dialogs,
            cancel,
            tasks,
        })
    }

    /// Where UDP listens (the bound port when the config said 0).
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// Where TCP listens (the same port as UDP).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// Agents' phones: where they are, and changes of their state.
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// The dialog layer, for legs the call flow starts.
    pub fn dialogs(&self) -> &Dialogs {
        &self.dialogs
    }

    /// Stops the listeners and every task the endpoint started, and waits
    /// for them. The sockets close once the last [`Dialogs`] and
    /// [`IncomingCall`] handed out are dropped too.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        info!(udp = %self.udp_addr, "SIP endpoint stopped");
    }
}

impl Registrar {
    async fn run_expiry_owned(self, cancel: CancellationToken) {
        self.run_expiry(cancel).await
    }
}

/// Binds UDP on `listen` and checks that TCP can take the same port. With
/// port 0, tries a few OS-chosen ports until one is free on both.
fn bind_same_port(listen: SocketAddr) -> Result<(tokio::net::UdpSocket, SocketAddr), StartError> {
    let attempts = if listen.port() == 0 { 8 } else { 1 };
    let mut last_error = String::new();
    for _ in 0..attempts {
        let udp = std::net::UdpSocket::bind(listen).map_err(|error| StartError::Listen {
            transport: "UDP",
            addr: listen,
            reason: error.to_string(),
        })?;
        let port = udp.local_addr().map(|addr| addr.port()).unwrap_or(0);
        let tcp_addr = SocketAddr::new(listen.ip(), port);
        // rsipstack binds the TCP listener itself when it starts serving and
        // only logs a failure, so the port is tried here first (std sets
        // SO_REUSEADDR, as rsipstack does, so the probe does not block it).
        match std::net::TcpListener::bind(tcp_addr) {
            Ok(probe) => {
                drop(probe);
                udp.set_nonblocking(true)
                    .map_err(|error| StartError::Listen {
                        transport: "UDP",
                        addr: listen,
                        reason: error.to_string(),
                    })?;
                let udp =
                    tokio::net::UdpSocket::from_std(udp).map_err(|error| StartError::Listen {
                        transport: "UDP",
                        addr: listen,
                        reason: error.to_string(),
                    })?;
                return Ok((udp, tcp_addr));
            }
            Err(error) => last_error = error.to_string(),
        }
    }
    Err(StartError::Listen {
        transport: "TCP",
        addr: listen,
        reason: last_error,
    })
}

/// `sip:<addr>` plus `;transport=tcp` for TCP.
fn our_uri(addr: SocketAddr, transport: Option<Transport>) -> Uri {
    let mut params = Vec::new();
    if let Some(transport) = transport.filter(|t| *t != Transport::Udp) {
        params.push(Param::Transport(transport));
    }
    Uri {
        scheme: Some(rsipstack::sip::Scheme::Sip),
        host_with_port: addr.into(),
        params,
        ..Default::default()
    }
}

/// Takes each new server transaction and answers it in its own task (a
/// server transaction runs its timers only while someone awaits it).
async fn serve_transactions(
    router: Arc<Router>,
    mut incoming: rsipstack::transaction::TransactionReceiver,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    loop {
        let tx = tokio::select! {
            _ = cancel.cancelled() => return,
            tx = incoming.recv() => match tx {
                Some(tx) => tx,
                None => return,
            },
        };
        let router = router.clone();
        tasks.spawn(cancel.clone().run_until_cancelled_owned(async move {
            router.handle(tx).await;
        }));
    }
}

impl Router {
    async fn handle(&self, mut tx: Transaction) {
        let method = tx.original.method;
        let source = source_of(&tx);
        let transport = tx
            .connection
            .as_ref()
            .map_or(Transport::Udp, |connection| connection.transport());
        debug!(%method, %source, %transport, call_id = ?tx.original.call_id_header().map(|c| c.value().to_owned()).ok(), "sip request");

        if let Some(Dialog::Invite(mut dialog)) = self.dialogs.layer.match_dialog(&tx) {
            if let Err(error) = dialog.handle(&mut tx).await {
                debug!(%method, %source, %error, "in-dialog request failed");
            }
            return;
        }
        let has_to_tag = tx
            .original
            .to_header()
            .and_then(|to| to.tag())
            .is_ok_and(|tag| tag.is_some());
        let result = match method {
            Method::Options if !has_to_tag => {
                tx.reply_with(StatusCode::OK, vec![allow_header()], None)
                    .await
            }
            Method::Register => {
                let reply = self
                    .registrar
                    .handle_register(&tx.original, source, transport)
                    .await;
                tx.reply_with(reply.status, reply.headers, None).await
            }
            _ if has_to_tag => {
                debug!(%method, %source, "no such dialog: 481");
                tx.reply(StatusCode::CallTransactionDoesNotExist).await
            }
            Method::Invite => {
                self.handle_invite(tx, source, transport).await;
                return;
            }
            Method::Bye | Method::Info | Method::Update | Method::PRack => {
                tx.reply(StatusCode::CallTransactionDoesNotExist).await
            }
            _ => {
                tx.reply_with(StatusCode::MethodNotAllowed, vec![allow_header()], None)
                    .await
            }
        };
        if let Err(error) = result {
            debug!(%method, %source, %error, "failed to answer");
        }
    }

    async fn handle_invite(&self, mut tx: Transaction, source: SocketAddr, transport: Transport) {
        let refuse = |status: StatusCode, headers: Vec<Header>| (status, headers);
        let refusal = self.admit(&tx, source.ip());
        if let Some((status, headers)) = refusal.map(|(s, h)| refuse(s, h)) {
            if let Err(error) = tx.reply_with(status, headers, None).await {
                debug!(%source, %error, "failed to refuse an INVITE");
            }
            return;
        }
        let Some(slot) = self.call_slots.try_acquire() else {
            info!(%source, max_calls = self.call_slots.active(), "call refused: too many calls (503)");
            if let Err(error) = tx.reply(StatusCode::ServiceUnavailable).await {
                debug!(%source, %error, "failed to refuse an INVITE");
            }
            return;
        };
        let trunk = match self.trunk_of(&tx, source.ip()) {
            Some(trunk) => trunk,
            None => return, // admit() said yes a moment ago; cannot happen
        };
        let id_cell = DialogIdCell::default();
        let (state_tx, events) = self
            .dialogs
            .state_channel_holding(Some((id_cell.clone(), slot)));
        let contact = our_uri(
            self.dialogs
                .contact
                .host_with_port
                .clone()
                .try_into()
                .unwrap_or(source),
            Some(transport),
        );
        let mut dialog =
            match self
                .dialogs
                .layer
                .get_or_create_server_invite(&tx, state_tx, None, Some(contact))
            {
                Ok(dialog) => dialog,
                Err(error) => {
                    info!(%source, %error, "INVITE refused: no dialog can be made of it (400)");
                    if let Err(error) = tx.reply(StatusCode::BadRequest).await {
                        debug!(%source, %error, "failed to refuse an INVITE");
                    }
                    return;
                }
            };
        id_cell.set(dialog.id());
        info!(%source, trunk = %trunk, dialog_id = %dialog.id(), "incoming call");
        self.calls.incoming_call(IncomingCall {
            dialog: dialog.clone(),
            events,
            trunk,
            source,
            transport,
            dialogs: self.dialogs.clone(),
        });
        // Sends 100 Trying, then runs the INVITE transaction until the ACK
        // of the final answer (or the CANCEL).
        if let Err(error) = dialog.handle(&mut tx).await {
            debug!(%source, %error, "INVITE transaction ended with an error");
        }
    }

    /// The rate limit and the trunk policy: `None` to go on, or the refusal.
    fn admit(&self, tx: &Transaction, source: IpAddr) -> Option<(StatusCode, Vec<Header>)> {
        let limited = self
            .invite_rate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .check(source, Instant::now());
        if let Err(wait) = limited {
            let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            debug!(%source, retry_after, "INVITE refused: rate limit (503)");
            return Some((
                StatusCode::ServiceUnavailable,
                vec![Header::RetryAfter(RetryAfter::new(
                    retry_after.max(1).to_string(),
                ))],
            ));
        }
        match self.decide(tx, source) {
            TrunkDecision::Accept { .. } => None,
            TrunkDecision::Refuse { reason } => {
                debug!(%source, %reason, "INVITE refused: not a trunk (403)");
                Some((StatusCode::Forbidden, Vec::new()))
            }
            TrunkDecision::Challenge { stale, reason } => {
                debug!(%source, %reason, stale, "INVITE challenged (401)");
                let headers = self
                    .trunks
                    .challenges(unix_secs(), stale)
                    .into_iter()
                    .map(|value| Header::WwwAuthenticate(WwwAuthenticate::new(value)))
                    .collect();
                Some((StatusCode::Unauthorized, headers))
            }
        }
    }

    fn decide(&self, tx: &Transaction, source: IpAddr) -> TrunkDecision {
        let authorizations: Vec<&str> = tx
            .original
            .headers
            .iter()
            .filter_map(|header| match header {
                Header::Authorization(value) => Some(value.value()),
                _ => None,
            })
            .collect();
        self.trunks.admit(
            source,
            &authorizations,
            "INVITE",
            &tx.original.uri.to_string(),
            unix_secs(),
        )
    }

    fn trunk_of(&self, tx: &Transaction, source: IpAddr) -> Option<Arc<str>> {
        match self.decide(tx, source) {
            TrunkDecision::Accept { trunk } => Some(trunk),
            _ => None,
        }
    }
}

fn allow_header() -> Header {
    Header::Allow(Allow::new(ALLOWED_METHODS))
}

/// Where the request came from: the connection's peer.
fn source_of(tx: &Transaction) -> SocketAddr {
    tx.connection
        .as_ref()
        .and_then(|connection| connection.get_remote_addr())
        .and_then(|addr| addr.get_socketaddr().ok())
        .unwrap_or_else(|| {
            warn!("a request without a peer address");
            SocketAddr::from(([0, 0, 0, 0], 0))
        })
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
