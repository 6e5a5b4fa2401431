//! switchboard's server: the customer and agent WebSocket protocol
//! (PROTOCOL.md), the REST API with its OpenAPI document, token auth, limits
//! and graceful shutdown, over the `actors` engine.
//!
//! Architecture invariant: only this crate knows wire formats; it holds no
//! routing logic, and it never writes to the store behind the actors' back:
//! every runtime write goes through the StoreWriter (`Switchboard::write`,
//! or the data platform's methods, which use it).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod auth;
pub mod channel_courier;
pub mod config;
pub mod demo;
pub mod error;
pub mod extract;
pub mod health;
pub mod import;
pub mod listener;
pub mod metrics;
pub mod middleware;
pub mod phone;
pub mod rate;
pub mod recent_acks;
pub mod rest;
pub mod serve;
pub mod server;
pub mod state;
pub mod web;
pub mod webhooks;
pub mod wire;
pub mod ws;

pub use config::Config;
pub use server::{Server, router};
