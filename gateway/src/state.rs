//! What every handler shares.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actors::Switchboard;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::TokenSigner;
use crate::config::Config;
use crate::listener::ConnectionGauge;
use crate::rate::{RateLimiter, Verdict};

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The shared parts.
pub struct Inner {
    /// The engine.
    pub switchboard: Switchboard,
    /// Customer 360°, tickets, knowledge base, templates, webhooks.
    pub platform: Arc<actors::Platform>,
    /// Verifies (and for visitors, mints) tokens.
    pub signer: TokenSigner,
    /// The configuration in force.
    pub config: Config,
    /// Open and refused connections.
    pub gauge: Arc<ConnectionGauge>,
    /// Cancelled when sockets must close (shutdown): each sends 1001 and ends.
    pub close_sockets: CancellationToken,
    /// Every WebSocket task, so shutdown can wait for them.
    pub sockets: TaskTracker,
    /// WebSockets open now, by kind.
    pub n_customer_sockets: AtomicUsize,
    /// See `n_customer_sockets`.
    pub n_agent_sockets: AtomicUsize,
    /// Paces `POST /api/v1/visitors` for the whole server.
    pub visitor_limiter: Mutex<RateLimiter>,
    /// The source of the routing rules in force (`GET /api/v1/rules`);
    /// in a cluster also replaced when another node's rules are.
    pub rules_text: Arc<Mutex<String>>,
    /// False once shutdown begins: `/readyz` says so, so load balancers stop sending.
    pub ready: AtomicBool,
    /// Agents' phones registered with the SIP endpoint (`None`: `voice.enabled` is off).
    pub phones: Option<voice::sip::Registrar>,
    /// The phone channel's live calls, for the browser as an agent's phone
    /// (`None`: `voice.enabled` is off).
    pub calls: Option<voice::call::CallFlow>,
    /// The message-channel accounts of `[[channels]]`, by name.
    pub channels: channels::Registry,
    /// Platform messages acknowledged lately, so that a platform's retry
    /// after the session closed gets the same ack instead of a new session.
    pub recent_channel_acks: crate::recent_acks::RecentAcks,
    /// The cluster this node is a member of (`None`: it runs alone).
    pub cluster: Option<Arc<cluster::Cluster>>,
    /// When this server started (Unix ms).
    pub started_at_ms: i64,
}

/// The ways in besides the sockets and the REST API: the SIP endpoint's
/// registrar, the message-channel accounts, and the other nodes.
pub struct WaysIn {
    /// Agents' phones registered with the SIP endpoint (`None`: `voice.enabled` is off).
    pub phones: Option<voice::sip::Registrar>,
    /// The call flow (`None`: `voice.enabled` is off).
    pub calls: Option<voice::call::CallFlow>,
    /// The adapters of the `[[channels]]` accounts, shared with the
    /// courier of replies.
    pub channels: channels::Registry,
    /// The cluster this node is a member of (`None`: it runs alone).
    pub cluster: Option<Arc<cluster::Cluster>>,
}

impl AppState {
    /// State for a started engine.
    pub fn new(
        switchboard: Switchboard,
        platform: Arc<actors::Platform>,
        signer: TokenSigner,
        config: Config,
        gauge: Arc<ConnectionGauge>,
        rules_text: String,
        ways_in: WaysIn,
    ) -> AppState {
        let WaysIn {
            phones,
            calls,
            channels,
            cluster,
        } = ways_in;
        let visitor_limiter = Mutex::new(RateLimiter::new(
            config.limits.new_visitors_per_second,
            config.limits.new_visitor_burst,
            u32::MAX,
            std::time::Instant::now(),
        ));
        AppState(Arc::new(Inner {
            switchboard,
            platform,
            signer,
            config,
            gauge,
            close_sockets: CancellationToken::new(),
            sockets: TaskTracker::new(),
            n_customer_sockets: AtomicUsize::new(0),
            n_agent_sockets: AtomicUsize::new(0),
            visitor_limiter,
            rules_text: Arc::new(Mutex::new(rules_text)),
            ready: AtomicBool::new(true),
            phones,
            calls,
            channels,
            recent_channel_acks: Default::default(),
            cluster,
            started_at_ms: actors::clock::now(),
        }))
    }

    /// May one more web visitor be created now?
    pub fn admit_visitor(&self) -> bool {
        let mut limiter = self.visitor_limiter.lock().expect("visitor limiter lock");
        limiter.check(std::time::Instant::now()) == Verdict::Allow
    }

    /// Whether the server takes new work.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}
