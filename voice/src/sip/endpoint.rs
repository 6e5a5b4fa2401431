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
//! | a SIP version other than 2.0             | 505                                      |
//!
//! rsipstack itself answers retransmissions from its transaction cache,
//! absorbs stray ACKs, answers a CANCEL without a transaction with 481, and
//! drops what does not parse or lacks Via, From, Call-ID or CSeq, and
//! unknown methods, without answering (no 400): `tests/sip_endpoint.rs`
//! keeps the table.
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
use rsipstack::sip::{Header, Method, Param, StatusCode, Transport, Uri, Version};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportLayer};
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

        let (udp_socket, tcp_listener) = bind_same_port(config.listen)?;
        let udp_addr = udp_socket
            .local_addr()
            .map_err(|error| StartError::Listen {
                transport: "UDP",
                addr: config.listen,
                reason: error.to_string(),
            })?;
        let tcp_addr = tcp_listener
            .local_addr()
            .map_err(|error| StartError::Listen {
                transport: "TCP",
                addr: config.listen,
                reason: error.to_string(),
            })?;
        let public = SocketAddr::new(public_ip, udp_addr.port());

        let transport_layer = TransportLayer::new(cancel.child_token());
        let udp = UdpConnection::attach(
            rsipstack::transport::udp::UdpInner {
                conn: Arc::new(udp_socket),
                addr: SipAddr {
                    r#type: Some(Transport::Udp),
                    addr: udp_addr.into(),
                },
            },
            Some(public),
            Some(cancel.child_token()),
        )
        .await;
        transport_layer.add_transport(SipConnection::Udp(udp));

        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.child_token())
            .with_transport_layer(transport_layer)
            .with_user_agent(USER_AGENT)
            .with_option(EndpointOption::default())
            .with_inspector(Box::new(super::metrics::SipCounter))
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

        let tcp_local = SipAddr {
            r#type: Some(Transport::Tcp),
            addr: public.into(),
        };
        tasks.spawn(accept_tcp(
            tcp_listener,
            tcp_local,
            endpoint.inner.clone(),
            cancel.clone(),
        ));
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

/// Binds UDP and TCP on `listen`, the same port for both. With port 0,
/// tries a few OS-chosen UDP ports until TCP can have the same one.
fn bind_same_port(
    listen: SocketAddr,
) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener), StartError> {
    let listen_error = |transport: &'static str| {
        move |error: std::io::Error| StartError::Listen {
            transport,
            addr: listen,
            reason: error.to_string(),
        }
    };
    let attempts = if listen.port() == 0 { 8 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = std::net::UdpSocket::bind(listen).map_err(listen_error("UDP"))?;
        let port = udp.local_addr().map_err(listen_error("UDP"))?.port();
        // std sets SO_REUSEADDR on a listener, as rsipstack's own does.
        match std::net::TcpListener::bind(SocketAddr::new(listen.ip(), port)) {
            Ok(tcp) => {
                udp.set_nonblocking(true).map_err(listen_error("UDP"))?;
                tcp.set_nonblocking(true).map_err(listen_error("TCP"))?;
                let udp = tokio::net::UdpSocket::from_std(udp).map_err(listen_error("UDP"))?;
                let tcp = tokio::net::TcpListener::from_std(tcp).map_err(listen_error("TCP"))?;
                return Ok((udp, tcp));
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(StartError::Listen {
        transport: "TCP",
        addr: listen,
        reason: last_error.map_or_else(String::new, |error| error.to_string()),
    })
}

/// Accepts TCP connections and hands each to rsipstack's transport layer.
///
/// rsipstack's `TcpListenerConnection` binds its socket only once the
/// endpoint serves, in a spawned task, and merely logs a failed bind, so
/// `start` could return before TCP listens or while it never will. Owning
/// the listener makes both a start-up fact; the connections are rsipstack's
/// own `TcpConnection`s, as its listener would make them.
async fn accept_tcp(
    listener: tokio::net::TcpListener,
    local: SipAddr,
    endpoint: EndpointInnerRef,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of file descriptors, most likely: back off a little
                // rather than spin on the same error.
                warn!(%error, "failed to accept a SIP TCP connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        match TcpConnection::from_stream(stream, local.clone(), Some(cancel.child_token())) {
            Ok(connection) => endpoint
                .transport_layer
                .add_connection(SipConnection::Tcp(connection)),
            Err(error) => debug!(%error, "failed to set up a SIP TCP connection"),
        }
    }
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

        if tx.original.version != Version::V2 {
            // rsipstack parses any `SIP/x.y`; answer in the version we speak.
            debug!(version = %tx.original.version, %source, "unsupported SIP version: 505");
            tx.original.version = Version::V2;
            if let Err(error) = tx.reply(StatusCode::VersionNotSupported).await {
                debug!(%method, %source, %error, "failed to answer");
            }
            return;
        }
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
        let trunk = match self.admit(&tx, source.ip()) {
            Ok(trunk) => trunk,
            Err((status, headers)) => {
                if let Err(error) = tx.reply_with(status, headers, None).await {
                    debug!(%source, %error, "failed to refuse an INVITE");
                }
                return;
            }
        };
        let Some(slot) = self.call_slots.try_acquire() else {
            info!(%source, max_calls = self.call_slots.active(), "call refused: too many calls (503)");
            if let Err(error) = tx.reply(StatusCode::ServiceUnavailable).await {
                debug!(%source, %error, "failed to refuse an INVITE");
            }
            return;
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
        // 100 Trying before the handler sees the call: a handler that
        // answers at once would otherwise leave no room for it.
        if let Err(error) = tx.send_trying().await {
            debug!(%source, %error, "failed to send 100 Trying");
        }
        self.calls.incoming_call(IncomingCall {
            dialog: dialog.clone(),
            events,
            trunk,
            source,
            transport,
            dialogs: self.dialogs.clone(),
            registrar: self.registrar.clone(),
        });
        // Runs the INVITE transaction until the ACK of the final answer (or
        // the CANCEL).
        if let Err(error) = dialog.handle(&mut tx).await {
            debug!(%source, %error, "INVITE transaction ended with an error");
        }
    }

    /// The rate limit and the trunk policy: the caller's trunk, or the refusal.
    fn admit(
        &self,
        tx: &Transaction,
        source: IpAddr,
    ) -> Result<Arc<str>, (StatusCode, Vec<Header>)> {
        let limited = self
            .invite_rate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .check(source, Instant::now());
        if let Err(wait) = limited {
            let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            debug!(%source, retry_after, "INVITE refused: rate limit (503)");
            return Err((
                StatusCode::ServiceUnavailable,
                vec![Header::RetryAfter(RetryAfter::new(
                    retry_after.max(1).to_string(),
                ))],
            ));
        }
        match self.decide(tx, source) {
            TrunkDecision::Accept { trunk } => Ok(trunk),
            TrunkDecision::Refuse { reason } => {
                debug!(%source, %reason, "INVITE refused: not a trunk (403)");
                Err((StatusCode::Forbidden, Vec::new()))
            }
            TrunkDecision::Challenge { stale, reason } => {
                debug!(%source, %reason, stale, "INVITE challenged (401)");
                let headers = self
                    .trunks
                    .challenges(unix_secs(), stale)
                    .into_iter()
                    .map(|value| Header::WwwAuthenticate(WwwAuthenticate::new(value)))
                    .collect();
                Err((StatusCode::Unauthorized, headers))
            }
        }
    }

    fn decide(&self, tx: &Transaction, source: IpAddr) -> TrunkDecision {
        let authorizations = super::digest::authorizations(&tx.original);
        self.trunks.admit(
            source,
            &authorizations,
            "INVITE",
            &tx.original.uri.to_string(),
            unix_secs(),
        )
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
