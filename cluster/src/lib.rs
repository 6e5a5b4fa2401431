//! Several switchboard nodes as one system, over `ractor_cluster`.
//!
//! A node started with a `cluster.listen` address runs a ractor_cluster
//! `NodeServer` (TCP, authenticated by the shared cookie), connects to its
//! seeds (and, transitively, to every node they know), and runs one
//! cluster-visible actor, the [`node::Node`], which keeps the live member set
//! from heartbeats and closed connections. [`Cluster`] is the handle the
//! gateway holds: the member set now and as it changes, and a signal when
//! this node must not run (another live node has its id).
//!
//! ```text
//! Cluster (handle)
//! ├── NodeServer (ractor_cluster: listener, one NodeSession per peer)
//! ├── Node       (cluster-visible: heartbeats, the member set)
//! └── seed task  (connects to seeds that are not members, every second)
//! ```
//!
//! Placement (`engine::placement`) is rendezvous hashing over the live members.
//! What is built and what is not yet is in docs/cluster.md.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod membership;
pub mod node;
pub mod peers;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actors::Switchboard;

use ractor::{Actor, ActorRef};
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

pub use config::{ClusterConfig, Role};
pub use membership::MemberInfo;
pub use node::ClusterView;
use node::{Node, NodeMessage, Routes};
pub use peers::ClusterPeers;

/// Why a node could not join.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// A key of `[cluster]` is wrong.
    #[error("config key `{key}`: {reason}")]
    Config {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// The cluster port could not be opened.
    #[error("failed to listen for nodes on cluster.listen {addr}: {reason}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// Another live node has this node's id.
    #[error("{0}")]
    Refused(String),
    /// An actor could not be started.
    #[error("failed to start the cluster's {what}: {reason}")]
    Spawn {
        /// Which actor.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// How long a joining node waits for the seeds it reached to say hello
/// before it runs with whoever answered (it keeps listening afterwards).
const JOIN_WAIT_PER_HEARTBEAT: u32 = 10;
/// How often seeds that are not members are tried again.
const SEED_RETRY: Duration = Duration::from_secs(1);

/// This node's membership of a cluster.
pub struct Cluster {
    config: ClusterConfig,
    listen: SocketAddr,
    server: ActorRef<NodeServerMessage>,
    node: ActorRef<NodeMessage>,
    view: watch::Receiver<ClusterView>,
    refused: watch::Receiver<Option<String>>,
    seeds: JoinHandle<()>,
    peers: Arc<ClusterPeers>,
    runtime: Arc<OnceLock<Switchboard>>,
}

impl Cluster {
    /// Listens on `cluster.listen`, joins through the seeds, and returns
    /// once every seed that could be reached has said hello (or after ten
    /// heartbeats). Fails if another live node has this node's id.
    pub async fn join(config: &ClusterConfig) -> Result<Cluster, ClusterError> {
        config
            .validate()
            .map_err(|(key, reason)| ClusterError::Config { key, reason })?;
        let listen = resolve_port(config.listen_addr().expect("validated"))?;
        let seeds: Vec<SocketAddr> = config
            .seed_addrs()
            .expect("validated")
            .into_iter()
            .filter(|seed| *seed != listen)
            .collect();
        let me = MemberInfo {
            node_id: config.node_id,
            incarnation: random_u64(),
            started_at_ms: unix_ms(),
            cluster_addr: listen.to_string(),
            api_addr: String::new(),
            ready: false,
            roles: config.roles.clone(),
        };
        let server = NodeServer::new(
            listen.port(),
            config.cookie.expose().to_string(),
            me.node_name(),
            listen.ip().to_string(),
            None,
            // Connecting to one seed connects to every node it knows.
            Some(ractor_cluster::node::NodeConnectionMode::Transitive),
        )
        .with_listen_addr(listen.ip());
        let (server, _) =
            Actor::spawn(None, server, ())
                .await
                .map_err(|err| ClusterError::Listen {
                    addr: listen,
                    reason: err.to_string(),
                })?;
        let empty = ClusterView {
            me: me.clone(),
            peers: Vec::new(),
            n_joined: 0,
            n_left: 0,
        };
        let (view_tx, view) = watch::channel(empty);
        let (refused_tx, refused) = watch::channel(None);
        let routes = Routes::default();
        let runtime = Arc::new(OnceLock::new());
        let node = Node {
            me: me.clone(),
            heartbeat: config.heartbeat(),
            failure_timeout: config.failure_timeout(),
            view: Arc::new(view_tx),
            refused: Arc::new(refused_tx),
            routes: routes.clone(),
            runtime: runtime.clone(),
        };
        let (node, _) = match Actor::spawn(None, node, ()).await {
            Ok(spawned) => spawned,
            Err(err) => {
                server.stop(None);
                return Err(ClusterError::Spawn {
                    what: "node actor",
                    reason: err.to_string(),
                });
            }
        };
        // The NodeServer lives as long as the node; a failed cast means it
        // is gone, and the seed task's connects report that.
        let _ = server.cast(NodeServerMessage::SubscribeToEvents {
            id: "switchboard.membership".into(),
            subscription: Box::new(Events { node: node.clone() }),
        });
        let mut reached = Vec::new();
        for seed in &seeds {
            match ractor_cluster::client_connect(&server, *seed).await {
                Ok(()) => reached.push(seed.to_string()),
                Err(err) => {
                    info!(seed = %seed, error = %err, "seed not reachable yet; retrying every second")
                }
            }
        }
        let seeds_task = tokio::spawn(retry_seeds(server.clone(), view.clone(), seeds));
        let peers = Arc::new(ClusterPeers::new(&view.borrow().clone(), routes));
        let cluster = Cluster {
            config: config.clone(),
            listen,
            server,
            node,
            peers,
            view,
            refused,
            seeds: seeds_task,
            runtime,
        };
        cluster.wait_for_seeds(&reached).await?;
        cluster.peers.refresh(&cluster.view());
        let view = cluster.view();
        info!(
            node_id = config.node_id,
            cluster_listen = %listen,
            members = ?view.node_ids(),
            "joined the cluster"
        );
        Ok(cluster)
    }

    /// Waits until every seed in `reached` is a member, this node is
    /// refused, or the join wait is over.
    async fn wait_for_seeds(&self, reached: &[String]) -> Result<(), ClusterError> {
        let wait = self.config.heartbeat() * JOIN_WAIT_PER_HEARTBEAT;
        let mut view = self.view.clone();
        let mut refused = self.refused.clone();
        let all_in = async {
            loop {
                let missing = {
                    let now = view.borrow_and_update();
                    reached
                        .iter()
                        .any(|seed| !now.peers.iter().any(|(peer, _)| &peer.cluster_addr == seed))
                };
                if !missing {
                    return;
                }
                if view.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            () = all_in => {}
            () = tokio::time::sleep(wait) => {
                warn!(?reached, "not every seed said hello in time; running with those that did");
            }
            _ = refused.wait_for(Option::is_some) => {}
        }
        if let Some(reason) = self.refused.borrow().clone() {
            self.stop().await;
            return Err(ClusterError::Refused(reason));
        }
        Ok(())
    }

    /// Where this node takes node-to-node connections (the real port when
    /// configured with port 0).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// This node's id.
    pub fn node_id(&self) -> u8 {
        self.config.node_id
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The member set now.
    pub fn view(&self) -> ClusterView {
        self.view.borrow().clone()
    }

    /// The member set, as it changes.
    pub fn watch(&self) -> watch::Receiver<ClusterView> {
        self.view.clone()
    }

    /// The way this node's runtime reaches the others; give it to
    /// `Switchboard::start_with_peers`, then [`Cluster::attach`] the runtime.
    pub fn peers(&self) -> Arc<ClusterPeers> {
        self.peers.clone()
    }

    /// `runtime` runs: messages from other nodes go to it, the members learn
    /// that actors may be placed here, and from now on it runs what the
    /// member set places here.
    pub fn attach(&self, runtime: Switchboard) {
        if self.runtime.set(runtime.clone()).is_err() {
            warn!("a second runtime attached to the cluster ignored");
            return;
        }
        // The node actor lives as long as the handle.
        let _ = self.node.cast(NodeMessage::SetReady);
        self.peers.clone().follow(self.view.clone(), runtime);
    }

    /// Tells the members the public address of this node.
    pub fn set_api_addr(&self, addr: SocketAddr) {
        // The node actor lives as long as the handle.
        let _ = self.node.cast(NodeMessage::SetApiAddr(addr.to_string()));
    }

    /// Resolves when another live node turns out to have this node's id
    /// (two started at once); the reason names it. The node must stop.
    pub async fn refused(&self) -> String {
        let mut refused = self.refused.clone();
        match refused.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().expect("waited for it"),
            // The node actor is gone: the cluster was stopped, no refusal.
            Err(_) => std::future::pending().await,
        }
    }

    /// Hands this node's share over before it stops: the members stop
    /// placing actors here (this node says it is no longer ready), each
    /// takes its new share from the store while this node hands its groups'
    /// queues over and stops its agents and sessions. Returns after three
    /// heartbeats, time for every member to have heard and rebalanced.
    pub async fn leave(&self) {
        if self.runtime.get().is_none() {
            return;
        }
        info!(
            node_id = self.config.node_id,
            "leaving the cluster: handing this node's share over"
        );
        // The node actor lives as long as the handle.
        let _ = self.node.cast(NodeMessage::SetLeaving);
        tokio::time::sleep(self.config.heartbeat() * 3).await;
    }

    /// Leaves the cluster: the connections close, so the other members
    /// remove this node at once.
    pub async fn stop(&self) {
        self.seeds.abort();
        self.node.stop(None);
        // Stopping the server stops its node sessions and their sockets.
        if let Err(err) = self
            .server
            .stop_and_wait(None, Some(Duration::from_secs(2)))
            .await
        {
            debug!(error = %err, "node server stop");
        }
    }
}

/// Forwards ractor_cluster's connection events to the Node actor.
struct Events {
    node: ActorRef<NodeMessage>,
}

impl NodeEventSubscription for Events {
    fn node_session_opened(&self, _: ractor_cluster::node::NodeServerSessionInformation) {}

    fn node_session_disconnected(
        &self,
        session: ractor_cluster::node::NodeServerSessionInformation,
    ) {
        if let Some(peer) = session.peer_name {
            // The node actor stops only with the cluster.
            let _ = self
                .node
                .cast(NodeMessage::Disconnected(session.node_id, peer.name));
        }
    }

    fn node_session_authenticated(&self, _: ractor_cluster::node::NodeServerSessionInformation) {}

    fn node_session_ready(&self, session: ractor_cluster::node::NodeServerSessionInformation) {
        if let Some(peer) = session.peer_name {
            // As above.
            let _ = self
                .node
                .cast(NodeMessage::Connected(session.node_id, peer.name));
        }
    }
}

/// Connects, every second, to the seeds that are not members: a seed that
/// was down at start, or that restarted.
async fn retry_seeds(
    server: ActorRef<NodeServerMessage>,
    view: watch::Receiver<ClusterView>,
    seeds: Vec<SocketAddr>,
) {
    loop {
        tokio::time::sleep(SEED_RETRY).await;
        let missing: Vec<SocketAddr> = {
            let now = view.borrow();
            seeds
                .iter()
                .filter(|seed| {
                    let seed = seed.to_string();
                    !now.peers.iter().any(|(peer, _)| peer.cluster_addr == seed)
                })
                .copied()
                .collect()
        };
        for seed in missing {
            if let Err(err) = ractor_cluster::client_connect(&server, seed).await {
                debug!(seed = %seed, error = %err, "seed still not reachable");
            }
        }
    }
}

/// Port 0 becomes a free port (tests): the listener is opened by
/// ractor_cluster, which does not say which port it got.
fn resolve_port(addr: SocketAddr) -> Result<SocketAddr, ClusterError> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let probe = std::net::TcpListener::bind(addr).map_err(|err| ClusterError::Listen {
        addr,
        reason: err.to_string(),
    })?;
    probe.local_addr().map_err(|err| ClusterError::Listen {
        addr,
        reason: err.to_string(),
    })
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    u64::from_le_bytes(bytes)
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_millis() as i64)
        .unwrap_or_default()
}
