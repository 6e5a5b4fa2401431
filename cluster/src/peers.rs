//! [`ClusterPeers`]: the runtime's way to the other nodes (`actors::remote`)
//! over the Node actors, and the placement it follows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actors::remote::{Peers, Remote, RemoteAnswer, RemoteCall, RemoteError};
use actors::{ApiError, Switchboard};
use engine::placement::Placement;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::Role;
use crate::membership::MemberInfo;
use crate::node::{ClusterView, NodeMessage, Routes};

/// How long a call to another node may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The members actors are placed on: the ready ones that run the `core`
/// role. This node counts from the moment its runtime runs, or from the
/// start when no such member is ready (the first node, or nodes that start
/// together), so that a node joining a running cluster takes its share only
/// once it can serve it. When no member runs `core`, the actors run on the
/// ready members whatever their roles ([`uncovered_roles`] says so) rather
/// than nowhere.
pub fn placement_of(view: &ClusterView) -> Placement {
    let ready_peers = |core_only: bool| {
        view.peers
            .iter()
            .filter(move |(info, _)| info.ready && (!core_only || runs(info, Role::Core)))
            .map(|(info, _)| info.node_id)
    };
    let core_peers: Vec<u8> = ready_peers(true).collect();
    let me_core = runs(&view.me, Role::Core) && (view.me.ready || core_peers.is_empty());
    if core_peers.is_empty() && !me_core {
        let ready: Vec<u8> = ready_peers(false).collect();
        let with_me = view.me.ready || ready.is_empty();
        return Placement::new(ready.into_iter().chain(with_me.then_some(view.me.node_id)));
    }
    Placement::new(
        core_peers
            .into_iter()
            .chain(me_core.then_some(view.me.node_id)),
    )
}

/// Whether this node delivers the outbox: it runs `workers`, its runtime
/// runs, and no ready member with a lower id does (one deliverer at a time
/// over the shared store; the next takes over when it leaves).
pub fn delivers_outbox(view: &ClusterView) -> bool {
    view.me.ready
        && runs(&view.me, Role::Workers)
        && !view.peers.iter().any(|(info, _)| {
            info.ready && runs(info, Role::Workers) && info.node_id < view.me.node_id
        })
}

/// The roles no live member runs (this node and the ready others).
pub fn uncovered_roles(view: &ClusterView) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|role| {
            !runs(&view.me, *role)
                && !view
                    .peers
                    .iter()
                    .any(|(info, _)| info.ready && runs(info, *role))
        })
        .collect()
}

fn runs(info: &MemberInfo, role: Role) -> bool {
    info.roles.contains(&role)
}

/// The runtime's [`Peers`] in a cluster.
pub struct ClusterPeers {
    node_id: u8,
    placement: RwLock<Arc<Placement>>,
    /// [`delivers_outbox`] now.
    delivers: AtomicBool,
    routes: Routes,
}

impl ClusterPeers {
    pub(crate) fn new(view: &ClusterView, routes: Routes) -> ClusterPeers {
        ClusterPeers {
            node_id: view.me.node_id,
            placement: RwLock::new(Arc::new(placement_of(view))),
            delivers: AtomicBool::new(delivers_outbox(view)),
            routes,
        }
    }

    /// Follows the member set: whenever the placement changes, `runtime`
    /// runs what is placed here now (and stops the rest).
    pub(crate) fn follow(
        self: Arc<Self>,
        mut view: watch::Receiver<ClusterView>,
        runtime: Switchboard,
    ) {
        tokio::spawn(async move {
            let mut uncovered = Vec::new();
            loop {
                let (next, delivers, now_uncovered) = {
                    let view = view.borrow_and_update();
                    (
                        placement_of(&view),
                        delivers_outbox(&view),
                        uncovered_roles(&view),
                    )
                };
                if self.delivers.swap(delivers, Ordering::Relaxed) != delivers {
                    info!(delivers, "outbox delivery moved");
                }
                if now_uncovered != uncovered {
                    if now_uncovered.is_empty() {
                        info!("every role is covered again");
                    } else {
                        let roles: Vec<&str> =
                            now_uncovered.iter().map(|role| role.as_str()).collect();
                        warn!(roles = %roles.join(","), "no live member runs these roles (docs/cluster.md, \"Roles\")");
                    }
                    uncovered = now_uncovered;
                }
                let changed = {
                    let mut current = self
                        .placement
                        .write()
                        .expect("no panic while holding the lock");
                    let changed = **current != next;
                    if changed {
                        *current = Arc::new(next.clone());
                    }
                    changed
                };
                if changed {
                    info!(members = ?next.members(), "placement changed; rebalancing");
                    metrics::counter!("switchboard_cluster_rebalances_total").increment(1);
                    if let Err(err) = runtime.rebalance().await {
                        warn!(error = %err, "rebalance after a member change failed");
                    }
                }
                if view.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// The placement of `view`, before the runtime follows the members.
    pub(crate) fn refresh(&self, view: &ClusterView) {
        self.delivers
            .store(delivers_outbox(view), Ordering::Relaxed);
        *self
            .placement
            .write()
            .expect("no panic while holding the lock") = Arc::new(placement_of(view));
    }

    fn route(&self, node: u8) -> Option<ractor::ActorRef<NodeMessage>> {
        self.routes
            .read()
            .expect("no panic while holding the lock")
            .get(&node)
            .cloned()
    }
}

impl Peers for ClusterPeers {
    fn node_id(&self) -> u8 {
        self.node_id
    }

    fn placement(&self) -> Arc<Placement> {
        self.placement
            .read()
            .expect("no panic while holding the lock")
            .clone()
    }

    fn delivers_outbox(&self) -> bool {
        self.delivers.load(Ordering::Relaxed)
    }

    fn cast(&self, node: u8, message: Remote) {
        let Some(route) = self.route(node) else {
            // Gone or not connected yet: its actors come back elsewhere
            // from the store, and what they missed with them.
            debug!(node, "no route to node; message dropped");
            metrics::counter!("switchboard_cluster_undeliverable_total").increment(1);
            return;
        };
        let bytes = serde_json::to_vec(&message).expect("remote messages serialise");
        metrics::counter!("switchboard_cluster_forwarded_total", "direction" => "out", "kind" => "cast")
            .increment(1);
        // As above: a closing connection drops it.
        let _ = route.cast(NodeMessage::Cast(bytes));
    }

    fn broadcast(&self, message: Remote) {
        let routes: Vec<_> = self
            .routes
            .read()
            .expect("no panic while holding the lock")
            .values()
            .cloned()
            .collect();
        if routes.is_empty() {
            return;
        }
        let bytes = serde_json::to_vec(&message).expect("remote messages serialise");
        for route in routes {
            metrics::counter!("switchboard_cluster_forwarded_total", "direction" => "out", "kind" => "cast")
                .increment(1);
            // As in `cast`.
            let _ = route.cast(NodeMessage::Cast(bytes.clone()));
        }
    }

    fn call(&self, node: u8, call: RemoteCall) -> RemoteAnswer {
        let Some(route) = self.route(node) else {
            return Box::pin(std::future::ready(Err(ApiError::Unavailable(format!(
                "node {node} (not connected)"
            )))));
        };
        let bytes = serde_json::to_vec(&call).expect("remote calls serialise");
        metrics::counter!("switchboard_cluster_forwarded_total", "direction" => "out", "kind" => "call")
            .increment(1);
        // Sent now, in order with this node's other sends there; only the
        // answer is awaited.
        let (sender, receiver) = ractor::concurrency::oneshot();
        let sent = route.cast(NodeMessage::Call(bytes, sender.into()));
        Box::pin(async move {
            if sent.is_err() {
                return Err(ApiError::Unavailable(format!(
                    "node {node} (connection lost)"
                )));
            }
            let answer = match tokio::time::timeout(CALL_TIMEOUT, receiver).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => {
                    return Err(ApiError::Unavailable(format!(
                        "node {node} (connection lost)"
                    )));
                }
                Err(_) => {
                    return Err(ApiError::Unavailable(format!(
                        "node {node} (no answer in time)"
                    )));
                }
            };
            match serde_json::from_slice::<Result<serde_json::Value, RemoteError>>(&answer) {
                Ok(answer) => answer.map_err(ApiError::from_remote),
                Err(err) => Err(ApiError::Unavailable(format!(
                    "node {node} (unreadable answer: {err})"
                ))),
            }
        })
    }
}
