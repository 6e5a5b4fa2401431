//! `GET /api/v1/cluster` (admins): the live members as this node sees them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use engine::placement::Placement;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Caller;
use crate::error::{ErrorBody, HttpError, store_error};
use crate::state::AppState;
use crate::wire::Time;

/// The cluster as this node sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    /// `cluster`, or `standalone` when `cluster.listen` is empty (then the
    /// node is the only member).
    pub mode: String,
    /// The id of the node that answered.
    pub node_id: u8,
    /// Every live member, ascending by node id.
    pub members: Vec<ClusterMember>,
    /// How often members send heartbeats.
    pub heartbeat_ms: u64,
    /// Silence after which a member is removed (one that exits or is
    /// killed is removed at once: its connections close).
    pub failure_timeout_ms: u64,
    /// Members that joined since this node started.
    pub n_joined: u64,
    /// Members that left since this node started.
    pub n_left: u64,
    /// Where this node places each skill group and agent now.
    pub placement: ClusterPlacement,
    /// Roles (`edge`, `core`, `workers`) no live member runs: a cluster
    /// works when this is empty (docs/cluster.md, "Roles").
    pub uncovered_roles: Vec<String>,
    /// This node delivers the outbox (one member with the `workers` role
    /// does at a time).
    pub delivers_outbox: bool,
}

/// Which node runs each skill group and agent (`engine::placement`, over
/// the ready members).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterPlacement {
    /// The members actors are placed on, ascending.
    pub members: Vec<u8>,
    /// Group id → node id.
    pub groups: BTreeMap<String, u8>,
    /// Agent id → node id.
    pub agents: BTreeMap<String, u8>,
}

/// One live member.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterMember {
    /// Its `cluster.node_id`.
    pub node_id: u8,
    /// It is the node that answered.
    pub this_node: bool,
    /// Where it takes node-to-node connections (empty when standalone).
    pub cluster_addr: String,
    /// Its public HTTP and WebSocket address (empty until it listens).
    pub api_addr: String,
    /// When its process started.
    pub started_at: Time,
    /// Milliseconds since its last heartbeat arrived (0 for this node).
    pub last_heard_ms_ago: u64,
    /// Its runtime runs: skill groups, agents and sessions are placed on
    /// it when it runs the `core` role.
    pub ready: bool,
    /// What it does (`cluster.roles`).
    pub roles: Vec<String>,
}

/// The live members and how failures are detected.
#[utoipa::path(
    get,
    path = "/api/v1/cluster",
    tag = "cluster",
    responses(
        (status = 200, description = "The members as this node sees them", body = ClusterStatus),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn cluster_status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ClusterStatus>, HttpError> {
    caller.require_admin()?;
    let config = &state.config.cluster;
    let placement = placement(&state).await?;
    let Some(cluster) = &state.cluster else {
        return Ok(Json(ClusterStatus {
            mode: "standalone".into(),
            node_id: config.node_id,
            members: vec![ClusterMember {
                node_id: config.node_id,
                this_node: true,
                cluster_addr: String::new(),
                api_addr: state.config.server.listen.to_string(),
                started_at: Time(state.started_at_ms),
                last_heard_ms_ago: 0,
                ready: true,
                roles: role_names(&config.roles),
            }],
            heartbeat_ms: config.heartbeat_ms,
            failure_timeout_ms: config.failure_timeout_ms,
            n_joined: 0,
            n_left: 0,
            placement,
            uncovered_roles: Vec::new(),
            delivers_outbox: true,
        }));
    };
    let view = cluster.view();
    let now = std::time::Instant::now();
    let mut members: Vec<ClusterMember> = view
        .peers
        .iter()
        .map(|(info, last_heard)| ClusterMember {
            node_id: info.node_id,
            this_node: false,
            cluster_addr: info.cluster_addr.clone(),
            api_addr: info.api_addr.clone(),
            started_at: Time(info.started_at_ms),
            last_heard_ms_ago: now.saturating_duration_since(*last_heard).as_millis() as u64,
            ready: info.ready,
            roles: role_names(&info.roles),
        })
        .collect();
    members.push(ClusterMember {
        node_id: view.me.node_id,
        this_node: true,
        cluster_addr: view.me.cluster_addr.clone(),
        api_addr: view.me.api_addr.clone(),
        started_at: Time(view.me.started_at_ms),
        last_heard_ms_ago: 0,
        ready: view.me.ready,
        roles: role_names(&view.me.roles),
    });
    members.sort_by_key(|member| member.node_id);
    Ok(Json(ClusterStatus {
        mode: "cluster".into(),
        node_id: view.me.node_id,
        members,
        heartbeat_ms: config.heartbeat_ms,
        failure_timeout_ms: config.failure_timeout_ms,
        n_joined: view.n_joined,
        n_left: view.n_left,
        placement,
        uncovered_roles: role_names(&cluster::peers::uncovered_roles(&view)),
        delivers_outbox: cluster::peers::delivers_outbox(&view),
    }))
}

fn role_names(roles: &[cluster::Role]) -> Vec<String> {
    roles.iter().map(|role| role.to_string()).collect()
}

/// The placement of every configured group and agent as this node sees it.
async fn placement(state: &AppState) -> Result<ClusterPlacement, HttpError> {
    let placement = match &state.cluster {
        Some(cluster) => {
            use actors::remote::Peers;
            cluster.peers().placement()
        }
        None => std::sync::Arc::new(Placement::new([state.config.cluster.node_id])),
    };
    let store = state.switchboard.store();
    let groups = store.list_groups().await.map_err(store_error)?;
    let agents = store.list_agents().await.map_err(store_error)?;
    Ok(ClusterPlacement {
        members: placement.members().to_vec(),
        groups: groups
            .iter()
            .map(|group| (group.id.to_string(), placement.group(&group.id)))
            .collect(),
        agents: agents
            .iter()
            .map(|agent| (agent.id.to_string(), placement.agent(&agent.id)))
            .collect(),
    })
}
