//! The Node actor: this node's one cluster-visible actor. It joins the
//! process group every node's Node actor is in (ractor_cluster shares the
//! group with every peer), tells every peer it is alive on a timer, and keeps
//! the member set ([`Membership`]) from what it hears, from closed
//! connections and from silence.
//!
//! Only this actor is cluster-visible: ractor_cluster advertises every
//! actor whose messages can be serialised to every peer, so sessions,
//! agents and groups stay local.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorClusterMessage;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::membership::{Change, LeftWhy, MemberInfo, Membership};

/// The process group of every node's Node actor.
pub const NODES_GROUP: &str = "switchboard.nodes";

/// Messages of the Node actor. Only `Heartbeat` comes from peers; the
/// others are this node's own (its timer, its connection events), though
/// any authenticated peer could send them.
#[derive(RactorClusterMessage)]
pub enum NodeMessage {
    /// A peer's [`MemberInfo`], as JSON.
    Heartbeat(Vec<u8>),
    /// Time to send heartbeats and to look for silent members.
    Tick,
    /// The connection to the node named so closed.
    Disconnected(String),
    /// A connection to a node is ready: say hello at once rather than at
    /// the next tick, so that joins are quick.
    Connected,
    /// This node now takes the public's connections at this address.
    SetApiAddr(String),
}

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
}

/// The Node actor's state.
pub struct NodeState {
    members: Membership,
    /// The start of the monotonic clock [`Membership`] counts in.
    epoch: Instant,
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
            NodeMessage::Tick => {
                self.say_hello(&myself, state);
                state.members.expire(now)
            }
            NodeMessage::Connected => {
                self.say_hello(&myself, state);
                Vec::new()
            }
            NodeMessage::Disconnected(name) => match MemberInfo::parse_node_name(&name) {
                Some((node_id, incarnation)) => state.members.disconnected(node_id, incarnation),
                None => {
                    debug!(peer = %name, "a connection to a node that is not a switchboard closed");
                    Vec::new()
                }
            },
            NodeMessage::SetApiAddr(addr) => {
                state.members.set_api_addr(addr);
                self.say_hello(&myself, state);
                Vec::new()
            }
        };
        for change in changes {
            self.apply(state, change);
        }
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
                let reason = format!(
                    "node id {} is already taken by the live node at {} (started {} ms before this one); give each node its own cluster.node_id",
                    me.node_id,
                    by.cluster_addr,
                    me.started_at_ms - by.started_at_ms
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
