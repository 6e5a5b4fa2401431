//! Starting and stopping the server: open the store, seed the demo, start
//! the engine, bind the capped listener, serve; on shutdown stop accepting,
//! flush the store writer, close every socket with 1001, stop the engine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actors::Switchboard;
use actors::platform::{Courier, Platform};
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use engine::channel::ChannelRegistry;
use engine::routing::RuleSet;
use store::{CachedStore, Store};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use voice::sip::SipEndpoint;

use crate::auth::TokenSigner;
use crate::channel_courier::ChannelCourier;
use crate::config::{Config, open_file_limit};
use crate::listener::{CappedListener, ConnectionGauge};
use crate::state::AppState;
use crate::webhooks::{WebhookCourier, Webhooks};

/// The whole HTTP surface: REST (with its OpenAPI document), WebSockets,
/// pages, health; everything but health passes the middleware stack
/// (`crate::middleware`: request ids, access log, timeout, compression, CORS).
pub fn router(state: AppState) -> Router {
    let (api, openapi) = crate::rest::api_router().split_for_parts();
    let openapi = Arc::new(openapi);
    let routes = Router::new()
        .merge(api)
        .merge(crate::web::routes())
        .route(
            "/api/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        .route("/ws/customer", get(crate::ws::customer::upgrade))
        .route("/ws/agent", get(crate::ws::agent::upgrade))
        .route(
            "/api/v1/channels/{name}/bridge",
            get(crate::rest::channel_bridge::upgrade),
        );
    let routes = if state.config.cluster.runs(cluster::Role::Edge) {
        routes
    } else {
        // Only the cluster status stays: a client that reached a node
        // without the `edge` role is told where the edge nodes are.
        routes.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge_only,
        ))
    };
    crate::middleware::layer(routes, &state.config)
        .route("/healthz", get(crate::health::healthz))
        .route("/readyz", get(crate::health::readyz))
        .layer(DefaultBodyLimit::max(
            state.config.limits.max_http_body_bytes,
        ))
        .with_state(state)
}

/// On a node without the `edge` role (`cluster.roles`): every request but
/// `GET /api/v1/cluster` is answered 421 `not_an_edge_node`, naming the
/// members that serve clients.
async fn edge_only(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if request.uri().path() == "/api/v1/cluster" {
        return next.run(request).await;
    }
    let edges: Vec<String> = state
        .cluster
        .as_ref()
        .map(|cluster| {
            cluster
                .view()
                .peers
                .iter()
                .filter(|(info, _)| info.roles.contains(&cluster::Role::Edge))
                .filter(|(info, _)| !info.api_addr.is_empty())
                .map(|(info, _)| format!("http://{}", info.api_addr))
                .collect()
        })
        .unwrap_or_default();
    crate::error::HttpError::new(
        axum::http::StatusCode::MISDIRECTED_REQUEST,
        "not_an_edge_node",
        format!(
            "node {} does not serve clients (cluster.roles has no `edge`); edge nodes: {}",
            state.config.cluster.node_id,
            if edges.is_empty() {
                "none live".to_string()
            } else {
                edges.join(", ")
            }
        ),
    )
    .into_response()
}

/// Connections the admin listener (`/metrics`, health) holds at once.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// A running server.
pub struct Server {
    /// Where it listens (with the real port when configured with port 0).
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`).
    pub admin_addr: SocketAddr,
    /// The SIP endpoint's address (UDP and TCP), when `voice.enabled`.
    pub sip_addr: Option<SocketAddr>,
    /// Shared state (tests read counters from it).
    pub state: AppState,
    stop_accepting: CancellationToken,
    serve: JoinHandle<()>,
    phone: Option<(SipEndpoint, voice::call::CallFlow)>,
}

impl Server {
    /// Opens the store, seeds demo data if enabled and the store is empty,
    /// starts the engine and starts serving.
    pub async fn start(config: Config) -> Result<Server> {
        config
            .validate()
            .map_err(|(key, reason)| anyhow::anyhow!("config key `{key}`: {reason}"))?;
        config.connection_cap(open_file_limit())?;
        let store: Arc<dyn Store> = config.store.open().await?;
        Server::start_on_store(config, store).await
    }

    /// [`Server::start`] over a store opened by the caller (tests put a
    /// fault-injecting wrapper around a real one).
    pub async fn start_on_store(config: Config, store: Arc<dyn Store>) -> Result<Server> {
        config
            .validate()
            .map_err(|(key, reason)| anyhow::anyhow!("config key `{key}`: {reason}"))?;
        let cap = config.connection_cap(open_file_limit())?;
        std::fs::create_dir_all(&config.store.data_dir).with_context(|| {
            format!(
                "failed to create data directory {}",
                config.store.data_dir.display()
            )
        })?;
        let secret_path = config.store.data_dir.join(&config.auth.secret_file);
        let signer = TokenSigner::from_secret_or_file(config.auth.secret.expose(), &secret_path)?;
        if config.demo.enabled {
            crate::demo::seed_if_empty(store.as_ref(), &config.voice.realm).await?;
        }
        let (rules, rules_text) = load_rules(&config)?;
        let mut runtime = config.runtime();
        runtime.max_new_sessions_per_customer_per_hour =
            config.limits.new_sessions_per_customer_per_hour;
        // Every write, the actors' included, passes the customer cache, which
        // drops what it changes.
        let cache = Arc::new(CachedStore::new(
            store,
            config.platform.customer_cache_entries,
        ));
        // A custom channel named by a `[[channels]]` account is declared to
        // the engine, which refuses messages on undeclared ones.
        let custom_channels: std::collections::BTreeSet<&str> = config
            .channels
            .iter()
            .filter(|entry| matches!(entry.channel, engine::channel::Channel::Custom(_)))
            .map(|entry| entry.channel.as_str())
            .collect();
        let channel_names = ChannelRegistry::new(custom_channels)
            .context("failed to declare the channels of [[channels]]")?;
        // Before anything records: in a cluster every series is labelled
        // with the node.
        let cluster_node = config.cluster.enabled().then_some(config.cluster.node_id);
        crate::metrics::install(cluster_node);
        // Before the engine mints its first id: a node whose id another
        // live node has must not run at all.
        let cluster = if config.cluster.enabled() {
            Some(Arc::new(
                cluster::Cluster::join(&config.cluster)
                    .await
                    .context("failed to join the cluster")?,
            ))
        } else {
            None
        };
        let peers = cluster
            .as_ref()
            .map(|cluster| cluster.peers() as Arc<dyn actors::remote::Peers>);
        let started =
            Switchboard::start_with_peers(cache.clone(), rules, channel_names, runtime, peers)
                .await;
        let switchboard = match started {
            Ok(switchboard) => switchboard,
            Err(err) => {
                stop_cluster(cluster.as_deref()).await;
                return Err(anyhow::Error::from(err).context("failed to start the engine"));
            }
        };
        if let Some(cluster) = &cluster {
            // A customer changed through this node is dropped from every
            // node's cache before the change is acknowledged.
            let peers = cluster.peers() as Arc<dyn actors::remote::Peers>;
            cache.share_with(Arc::new(actors::remote::ClusterCaches::new(peers)));
            cluster.attach(switchboard.clone());
        }
        // One adapter per account, shared by the inbound route and the
        // courier of replies (an account's access token is fetched once).
        let channels = config
            .channel_registry()
            .context("[[channels]] do not build")?;
        let platform = match start_platform(&config, &switchboard, cache, &channels).await {
            Ok(platform) => platform,
            Err(err) => {
                switchboard.shutdown().await;
                stop_cluster(cluster.as_deref()).await;
                return Err(err);
            }
        };
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("failed to listen on {}", config.server.listen))?;
        let addr = listener.local_addr()?;
        crate::metrics::handle();
        crate::metrics::register_series(&switchboard.store().list_groups().await?);
        for account in channels.accounts() {
            crate::rest::channel_inbound::register_series(account);
            crate::channel_courier::register_series(account);
            if account.kind == "bridge" {
                crate::rest::channel_bridge::register_series(account);
            }
        }
        let admin_listen = config.server.admin_listen;
        let admin_listener = TcpListener::bind(admin_listen)
            .await
            .with_context(|| format!("failed to listen on server.admin_listen {admin_listen}"))?;
        let admin_addr = admin_listener.local_addr()?;
        let gauge = ConnectionGauge::new(cap, config.limits.max_connections_per_address);
        let header_timeout = Duration::from_millis(config.limits.http_header_timeout_ms);
        // Last of what can fail, so that nothing else is left running.
        let phone = match start_phone(&config, &switchboard).await {
            Ok(phone) => phone,
            Err(err) => {
                platform.stop(Duration::ZERO).await;
                switchboard.shutdown().await;
                stop_cluster(cluster.as_deref()).await;
                return Err(err);
            }
        };
        if let Some(cluster) = &cluster {
            cluster.set_api_addr(addr);
        }
        let state = AppState::new(
            switchboard,
            platform,
            signer,
            config,
            gauge.clone(),
            rules_text,
            crate::state::WaysIn {
                phones: phone
                    .as_ref()
                    .map(|(endpoint, _)| endpoint.registrar().clone()),
                calls: phone.as_ref().map(|(_, calls)| calls.clone()),
                channels,
                cluster,
            },
        );
        // Rules another node puts in force are this node's `GET` text too.
        let rules_text = state.rules_text.clone();
        state.switchboard.on_rules_replaced(Arc::new(move |text| {
            *rules_text.lock().expect("rules text lock") = text;
        }));
        let app = router(state.clone());
        let stop_accepting = CancellationToken::new();
        let stop = stop_accepting.clone();
        let serve = tokio::spawn(crate::serve::serve(
            CappedListener::new(listener, gauge),
            app,
            header_timeout,
            stop,
        ));
        // The admin listener has its own small cap and the same header-read
        // timeout, so idle connections there cannot use up the descriptors
        // `limits.reserved_fds` keeps for the store.
        let admin = crate::metrics::admin_router(state.clone());
        tokio::spawn(crate::serve::serve(
            CappedListener::new(
                admin_listener,
                ConnectionGauge::new(ADMIN_MAX_CONNECTIONS, 0),
            ),
            admin,
            header_timeout,
            stop_accepting.clone(),
        ));
        info!(%addr, %admin_addr, max_connections = cap, "switchboard listening");
        Ok(Server {
            addr,
            admin_addr,
            sip_addr: phone.as_ref().map(|(endpoint, _)| endpoint.udp_addr()),
            state,
            stop_accepting,
            serve,
            phone,
        })
    }

    /// The engine handle.
    pub fn switchboard(&self) -> &Switchboard {
        &self.state.switchboard
    }

    /// Graceful shutdown: in a cluster, hand this node's share over first
    /// (`cluster::Cluster::leave`); then stop accepting, flush the store
    /// writer, close every WebSocket with 1001, wait for them (up to the
    /// grace period), stop the engine, leave the cluster.
    pub async fn shutdown(self) -> Result<()> {
        let state = self.state;
        state.ready.store(false, Ordering::Relaxed);
        // First, while this node still relays its clients' messages: the
        // other members take over its groups, agents and sessions.
        if let Some(cluster) = &state.cluster {
            cluster.leave().await;
        }
        self.stop_accepting.cancel();
        let grace = Duration::from_millis(state.config.server.shutdown_grace_ms);
        match tokio::time::timeout(grace, state.switchboard.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(error = %err, "store flush at shutdown failed"),
            Err(_) => warn!("store flush did not finish within the grace period"),
        }
        state.close_sockets.cancel();
        state.sockets.close();
        let grace = Duration::from_millis(state.config.server.shutdown_grace_ms);
        if tokio::time::timeout(grace, state.sockets.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = state.sockets.len(),
                "sockets still open after the grace period; dropping them"
            );
        }
        match tokio::time::timeout(grace, self.serve).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(error = %err, "server task failed"),
            Err(_) => warn!("HTTP connections still open after the grace period"),
        }
        if let Some((endpoint, calls)) = self.phone {
            // Calls in progress end with the process: recorded as dropped
            // and hung up (BYE) while the runtime still runs. A call that
            // outlives the wait is ended as dropped at the next start.
            let left = calls.hang_up_all(Duration::from_secs(2)).await;
            if left > 0 {
                warn!(calls = left, "calls still up when the SIP endpoint stopped");
            }
            endpoint.shutdown().await;
        }
        state.platform.stop(grace).await;
        state.switchboard.clone().shutdown().await;
        // Last: the other members see this node leave when nothing of it runs.
        stop_cluster(state.cluster.as_deref()).await;
        info!("switchboard stopped");
        Ok(())
    }
}

/// Leaves the cluster, if this node is in one.
async fn stop_cluster(cluster: Option<&cluster::Cluster>) {
    if let Some(cluster) = cluster {
        cluster.stop().await;
    }
}

/// The SIP endpoint with the call flow and agents' credentials from the
/// store, when `voice.enabled`.
async fn start_phone(
    config: &Config,
    switchboard: &Switchboard,
) -> Result<Option<(SipEndpoint, voice::call::CallFlow)>> {
    if !config.voice.enabled {
        return Ok(None);
    }
    let calls = voice::call::CallFlow::new(switchboard.clone(), &config.voice)
        .context("failed to set up the phone channel's call flow")?;
    let credentials =
        crate::phone::StoreCredentials::new(switchboard.store().clone(), &config.voice.realm);
    let endpoint = SipEndpoint::start(
        &config.voice,
        Arc::new(credentials),
        Arc::new(calls.clone()),
        CancellationToken::new(),
    )
    .await
    .with_context(|| {
        format!(
            "failed to start the SIP endpoint on voice.listen {}",
            config.voice.listen
        )
    })?;
    info!(sip = %endpoint.udp_addr(), realm = %config.voice.realm, "phone channel listening (UDP and TCP)");
    Ok(Some((endpoint, calls)))
}

/// Loads the data platform over the runtime (its writes go through the
/// StoreWriter) with the webhooks as its outbox encoder and courier, the
/// channel accounts' courier of agents' replies, and starts its workers.
async fn start_platform(
    config: &Config,
    switchboard: &Switchboard,
    cache: Arc<CachedStore>,
    channels: &channels::Registry,
) -> Result<Arc<Platform>> {
    let mut couriers: Vec<Arc<dyn Courier>> = vec![Arc::new(ChannelCourier::new(
        channels.clone(),
        switchboard.clone(),
    ))];
    let no_courier = match WebhookCourier::new(config.webhooks.clone()) {
        Ok(courier) => {
            couriers.push(Arc::new(courier));
            None
        }
        Err(err) => Some(err),
    };
    let platform = Platform::load(
        switchboard.clone(),
        cache,
        crate::webhooks::platform_settings(config),
        Arc::new(Webhooks::new(config.webhooks.clone())),
        couriers,
    )
    .await?;
    match no_courier {
        None => platform.start_workers(),
        Some(err) => {
            warn!(error = %err, "cannot build the webhook HTTP client; webhooks and session summaries stay in the outbox")
        }
    }
    Ok(platform)
}

/// The built-in rules: VIP → gold_service, phone → phone_support, else default.
pub const DEFAULT_RULES: &str = include_str!("../../engine/rules/default.toml");

/// The configured rules file, or the built-in rules, with their source text
/// (`GET /api/v1/rules` returns it).
fn load_rules(config: &Config) -> Result<(RuleSet, String)> {
    let path = &config.routing.rules_file;
    let (text, name) = if path.as_os_str().is_empty() {
        (DEFAULT_RULES.to_string(), "default.toml".to_string())
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read routing.rules_file {}", path.display()))?;
        (text, path.display().to_string())
    };
    let rules =
        RuleSet::parse(&text, &name).map_err(|err| anyhow::anyhow!("routing.rules_file: {err}"))?;
    Ok((rules, text))
}
