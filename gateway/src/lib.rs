//! switchboard's server: the customer and agent WebSocket protocol
//! (PROTOCOL.md), the REST API with its OpenAPI document, token auth, limits
//! and graceful shutdown, over the `actors` engine.
//!
//! Architecture invariant: only this crate knows wire formats; it holds no
//! routing logic.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod auth;
pub mod config;
pub mod demo;
pub mod error;
pub mod extract;
pub mod health;
pub mod import;
pub mod listener;
pub mod metrics;
pub mod middleware;
pub mod platform;
pub mod rate;
pub mod rest;
pub mod serve;
pub mod server;
pub mod state;
pub mod web;
pub mod wire;
pub mod ws;

pub use config::Config;
pub use server::{Server, router};
