//! [`ClusterPeers`]: the runtime's way to the other nodes (`actors::remote`)
//! over the Node actors, and the placement it follows.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use actors::remote::{Peers, Remote, RemoteAnswer, RemoteCall, RemoteError};
use actors::{ApiError, Switchboard};
use engine::placement::Placement;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::node::{ClusterView, NodeMessage, Routes};

/// How long a call to another node may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The members actors are placed on: the ready ones. This node counts from
/// the moment its runtime runs, or from the start when no member is ready
/// (the first node, or nodes that start together), so that a placement is
/// never empty and a node joining a running cluster takes its share only
/// once it can serve it.
pub fn placement_of(view: &ClusterView) -> Placement {
    let ready: Vec<u8> = view
        .peers
        .iter()
        .filter(|(info, _)| info.ready)
        .map(|(info, _)| info.node_id)
        .collect();
    let with_me = view.me.ready || ready.is_empty();
    Placement::new(ready.into_iter().chain(with_me.then_some(view.me.node_id)))
}

/// The runtime's [`Peers`] in a cluster.
pub struct ClusterPeers {
    node_id: u8,
    placement: RwLock<Arc<Placement>>,
    routes: Routes,
}

impl ClusterPeers {
    pub(crate) fn new(view: &ClusterView, routes: Routes) -> ClusterPeers {
        ClusterPeers {
            node_id: view.me.node_id,
            placement: RwLock::new(Arc::new(placement_of(view))),
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
            loop {
                let next = placement_of(&view.borrow_and_update());
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
