//! The Node actor: this node's one cluster-visible actor. It joins the
//! process group every node's Node actor is in (ractor_cluster shares the
//! group with every peer), tells every peer it is alive on a timer, and keeps
//! the member set ([`Membership`]) from what it hears, from closed
//! connections and from silence. It is also the way in for the runtime's
//! messages from other nodes (`actors::remote`): casts are handed to the
//! runtime in the order they arrive, calls are answered as they finish.
//! The way out is [`Routes`]: each member's Node actor, for
//! [`crate::peers::ClusterPeers`].
//!
//! Only this actor is cluster-visible: ractor_cluster advertises every
//! actor whose messages can be serialised to every peer, so sessions,
//! agents and groups stay local.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use actors::Switchboard;
use actors::remote::{Remote, RemoteCall, RemoteError};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::membership::{Change, LeftWhy, MemberInfo, Membership};

/// The process group of every node's Node actor.
pub const NODES_GROUP: &str = "switchboard.nodes";

/// How long a member whose last known connection closed may take to show
/// another one before it is removed. Two nodes that dial each other at once
/// open two connections and close one, and the close may be heard before
/// the other connection is: without the grace a live member would be
/// removed (and re-admitted a failure timeout later). A killed node shows
/// none, so it costs its detection this much.
pub const CONNECTION_GRACE: Duration = Duration::from_millis(100);

/// Messages of the Node actor. `Heartbeat`, `Cast` and `Call` come from
/// peers; the others are this node's own (its timer, its connection
/// events), though any authenticated peer could send them.
#[derive(RactorClusterMessage)]
pub enum NodeMessage {
    /// A peer's [`MemberInfo`], as JSON.
    Heartbeat(Vec<u8>),
    /// A [`Remote`] for this node's runtime, as JSON.
    Cast(Vec<u8>),
    /// A [`RemoteCall`] for this node's runtime, as JSON; the answer is a
    /// `Result<serde_json::Value, RemoteError>` as JSON.
    #[rpc]
    Call(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// Time to send heartbeats and to look for silent members.
    Tick,
    /// A connection to the node named so closed (ractor_cluster's id for
    /// the connection, and the name). Two nodes that dial each other at
    /// once open two connections and close one: the member leaves only when
    /// its last connection closes.
    Disconnected(u64, String),
    /// [`CONNECTION_GRACE`] after the last known connection to the node so
    /// named closed (the connection id and name, as in `Disconnected`): it
    /// leaves unless a connection to it is known by now.
    LastConnectionClosed(u64, String),
    /// A connection to a node is ready (ractor_cluster's node id for it,
    /// and its name): say hello at once rather than at the next tick, so
    /// that joins are quick.
    Connected(u64, String),
    /// This node now takes the public's connections at this address.
    SetApiAddr(String),
    /// This node's runtime runs: actors may be placed here.
    SetReady,
    /// This node is leaving: actors are placed elsewhere from now on.
    SetLeaving,
}

/// Each live member's Node actor, by node id: where casts and calls for
/// that node go. Kept by the Node actor, read on every send.
pub type Routes = Arc<RwLock<HashMap<u8, ActorRef<NodeMessage>>>>;

/// What the rest of the node sees of the member set.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// This node.
    pub me: MemberInfo,
    /// The other live members, by node id, with when each was last heard.
    pub peers: Vec<(MemberInfo, Instant)>,
    /// Members that joined since start (this node not counted).
    pub n_joined: u64,
    /// Members that left since start.
    pub n_left: u64,
}

impl ClusterView {
    /// The ids of every live member, this node's included, ascending.
    pub fn node_ids(&self) -> Vec<u8> {
        let mut ids: Vec<u8> = self.peers.iter().map(|(info, _)| info.node_id).collect();
        ids.push(self.me.node_id);
        ids.sort_unstable();
        ids
    }
}

/// The Node actor; config only.
pub struct Node {
    /// This node, as it starts.
    pub me: MemberInfo,
    /// How often to send heartbeats.
    pub heartbeat: Duration,
    /// Silence after which a member is removed.
    pub failure_timeout: Duration,
    /// Where the member set is published.
    pub view: Arc<watch::Sender<ClusterView>>,
    /// Set once, when another live node has this node's id.
    pub refused: Arc<watch::Sender<Option<String>>>,
    /// Every live member's Node actor.
    pub routes: Routes,
    /// This node's runtime, once it runs; until then other nodes' messages
    /// for it are dropped (no member places anything here before).
    pub runtime: Arc<OnceLock<Switchboard>>,
}

/// The Node actor's state.
pub struct NodeState {
    members: Membership,
    /// The start of the monotonic clock [`Membership`] counts in.
    epoch: Instant,
    /// ractor_cluster's id of each connection, as the (node id,
    /// incarnation) whose name it carries.
    connections: HashMap<u64, (u8, u64)>,
    n_joined: u64,
    n_left: u64,
}

impl Actor for Node {
    type Msg = NodeMessage;
    type State = NodeState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join(NODES_GROUP.to_string(), vec![myself.get_cell()]);
        myself.send_interval(self.heartbeat, || NodeMessage::Tick);
        metrics::gauge!("switchboard_cluster_members").set(1.0);
        Ok(NodeState {
            members: Membership::new(self.me.clone(), millis(self.failure_timeout)),
            epoch: Instant::now(),
            connections: HashMap::new(),
            n_joined: 0,
            n_left: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let now = millis(state.epoch.elapsed());
        let changes = match message {
            NodeMessage::Heartbeat(bytes) => match serde_json::from_slice::<MemberInfo>(&bytes) {
                Ok(info) => state.members.heard(info, now),
                Err(err) => {
                    warn!(error = %err, "unreadable heartbeat ignored");
                    Vec::new()
                }
            },
            NodeMessage::Cast(bytes) => {
                self.deliver(&bytes);
                return Ok(());
            }
            NodeMessage::Call(bytes, reply) => {
                self.answer(bytes, reply);
                return Ok(());
            }
            NodeMessage::Tick => {
                self.say_hello(&myself, state);
                state.members.expire(now)
            }
            NodeMessage::Connected(connection, name) => {
                if let Some(who) = MemberInfo::parse_node_name(&name) {
                    state.connections.insert(connection, who);
                }
                self.say_hello(&myself, state);
                Vec::new()
            }
            NodeMessage::SetReady => {
                state.members.set_ready(true);
                self.say_hello(&myself, state);
                Vec::new()
            }
            NodeMessage::SetLeaving => {
                state.members.set_ready(false);
                self.say_hello(&myself, state);
                Vec::new()
            }
            NodeMessage::Disconnected(connection, name) => {
                state.connections.remove(&connection);
                match MemberInfo::parse_node_name(&name) {
                    Some(who) if state.connections.values().any(|other| *other == who) => {
                        debug!(peer = %name, "a second connection to a member closed");
                        Vec::new()
                    }
                    Some(_) => {
                        myself.send_after(CONNECTION_GRACE, move || {
                            NodeMessage::LastConnectionClosed(connection, name)
                        });
                        Vec::new()
                    }
                    None => {
                        debug!(peer = %name, "a connection to a node that is not a switchboard closed");
                        Vec::new()
                    }
                }
            }
            NodeMessage::LastConnectionClosed(_, name) => {
                match MemberInfo::parse_node_name(&name) {
                    Some(who) if state.connections.values().any(|other| *other == who) => {
                        debug!(peer = %name, "a member whose connection closed has another one");
                        Vec::new()
                    }
                    Some((node_id, incarnation)) => {
                        state.members.disconnected(node_id, incarnation, now)
                    }
                    None => Vec::new(),
                }
            }
            NodeMessage::SetApiAddr(addr) => {
                state.members.set_api_addr(addr);
                self.say_hello(&myself, state);
                Vec::new()
            }
        };
        for change in changes {
            self.apply(state, change);
        }
        self.refresh_routes(state);
        // Every time, not only on a change: the view shows when each member
        // was last heard (a few copies a second of a short list).
        self.publish(state);
        Ok(())
    }
}

impl Node {
    /// Casts this node's heartbeat to every peer's Node actor.
    fn say_hello(&self, myself: &ActorRef<NodeMessage>, state: &NodeState) {
        let hello = serde_json::to_vec(state.members.me()).expect("member info serialises");
        for cell in ractor::pg::get_members(&NODES_GROUP.to_string()) {
            if cell.get_id() == myself.get_id() || cell.get_id().is_local() {
                continue;
            }
            let peer: ActorRef<NodeMessage> = cell.into();
            // A peer whose connection is closing drops it; its member entry
            // goes with the connection or with its silence.
            let _ = peer.cast(NodeMessage::Heartbeat(hello.clone()));
        }
    }

    /// Hands a cast from another node to the runtime.
    fn deliver(&self, bytes: &[u8]) {
        let Some(runtime) = self.runtime.get() else {
            debug!("a message for the runtime before it runs dropped");
            return;
        };
        match serde_json::from_slice::<Remote>(bytes) {
            Ok(remote) => {
                metrics::counter!("switchboard_cluster_forwarded_total", "direction" => "in", "kind" => "cast")
                    .increment(1);
                runtime.receive(remote);
            }
            Err(err) => warn!(error = %err, "unreadable message from another node dropped"),
        }
    }

    /// Hands a call from another node to the runtime at once (so calls
    /// reach their actors in the order they came), and answers it when the
    /// actor has, without waiting for that here.
    fn answer(&self, bytes: Vec<u8>, reply: RpcReplyPort<Vec<u8>>) {
        metrics::counter!("switchboard_cluster_forwarded_total", "direction" => "in", "kind" => "call")
            .increment(1);
        let answering = match (
            self.runtime.get(),
            serde_json::from_slice::<RemoteCall>(&bytes),
        ) {
            (None, _) => Err(RemoteError {
                code: "unavailable".into(),
                message: "the node is starting; retry".into(),
            }),
            (Some(runtime), Ok(call)) => Ok(runtime.take(call)),
            (Some(_), Err(err)) => Err(RemoteError {
                code: "invalid".into(),
                message: format!("unreadable call from another node: {err}"),
            }),
        };
        tokio::spawn(async move {
            let answer: Result<serde_json::Value, RemoteError> = match answering {
                Ok(answering) => answering.await.map_err(|err| RemoteError::from(&err)),
                Err(err) => Err(err),
            };
            let bytes = serde_json::to_vec(&answer).expect("answers serialise");
            // The caller may have given up waiting.
            let _ = reply.send(bytes);
        });
    }

    /// Keeps [`Routes`] to the Node actor of each live member: the process
    /// group's remote members whose connection carries that member's name.
    fn refresh_routes(&self, state: &NodeState) {
        let mut routes = HashMap::new();
        for cell in ractor::pg::get_members(&NODES_GROUP.to_string()) {
            let ActorId::Remote { node_id, .. } = cell.get_id() else {
                continue;
            };
            let Some((member, incarnation)) = state.connections.get(&node_id) else {
                continue;
            };
            let live = state
                .members
                .peers()
                .any(|peer| peer.info.node_id == *member && peer.info.incarnation == *incarnation);
            if live {
                routes.insert(*member, ActorRef::<NodeMessage>::from(cell));
            }
        }
        *self
            .routes
            .write()
            .expect("no panic while holding the lock") = routes;
    }

    fn apply(&self, state: &mut NodeState, change: Change) {
        match change {
            Change::Joined(member) => {
                state.n_joined += 1;
                metrics::counter!("switchboard_cluster_member_changes_total", "change" => "joined")
                    .increment(1);
                info!(
                    node_id = member.node_id,
                    cluster_addr = %member.cluster_addr,
                    api_addr = %member.api_addr,
                    "node joined the cluster"
                );
            }
            Change::Left { member, why } => {
                state.n_left += 1;
                let why_label = match why {
                    LeftWhy::Disconnected => "disconnected",
                    LeftWhy::Silent => "silent",
                };
                metrics::counter!("switchboard_cluster_member_changes_total", "change" => "left", "why" => why_label)
                    .increment(1);
                warn!(
                    node_id = member.node_id,
                    cluster_addr = %member.cluster_addr,
                    why = why_label,
                    "node left the cluster"
                );
            }
            Change::Refused { by } => {
                let me = state.members.me();
                let serving = if by.ready && !me.ready {
                    "serving"
                } else {
                    "started earlier"
                };
                let reason = format!(
                    "node id {} is already taken by the live node at {} ({serving}; its clock says it started {} ms before this one); give each node its own cluster.node_id",
                    me.node_id,
                    by.cluster_addr,
                    me.started_at_ms.saturating_sub(by.started_at_ms)
                );
                error!(%reason, "this node may not run");
                self.refused.send_if_modified(|refused| {
                    if refused.is_some() {
                        return false;
                    }
                    *refused = Some(reason);
                    true
                });
            }
        }
    }

    fn publish(&self, state: &NodeState) {
        let peers: Vec<(MemberInfo, Instant)> = state
            .members
            .peers()
            .map(|peer| {
                (
                    peer.info.clone(),
                    state.epoch + Duration::from_millis(peer.last_heard),
                )
            })
            .collect();
        metrics::gauge!("switchboard_cluster_members").set((peers.len() + 1) as f64);
        self.view.send_replace(ClusterView {
            me: state.members.me().clone(),
            peers,
            n_joined: state.n_joined,
            n_left: state.n_left,
        });
    }
}

fn millis(duration: Duration) -> u64 {
    duration.as_millis().try_into().unwrap_or(u64::MAX)
}
