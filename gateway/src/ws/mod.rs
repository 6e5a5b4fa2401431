//! The WebSocket protocol (PROTOCOL.md): `/ws/customer` and `/ws/agent`.

pub mod agent;
pub mod customer;
pub mod delivered;
pub mod frames;
pub mod link;
pub mod replies;
