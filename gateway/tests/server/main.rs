//! The switchboard server from outside: its WebSocket protocol, REST API,
//! channels, limits, shutdown, command line and cluster, over real sockets,
//! a real SQLite store and, where a test needs them, real `switchboard`
//! processes and sipp phones.
//!
//! One test binary, one module per topic (`cargo test -p gateway --test
//! server e2e::` runs a topic). Every gateway test binary links the whole
//! server, about 170 MB in a debug build: twenty of them made a run of
//! scripts/test from scratch peak at 8.7 GB in target/ instead of 6.3 GB, and
//! link twenty times. The tests that read the process-wide metrics recorder
//! (`/metrics` values, which every server in one process shares) keep a
//! binary of their own, as do the browser tests.

#[path = "../common/mod.rs"]
mod common;

mod banner;
mod channel_qq;
mod channel_wechat;
mod cli;
mod cluster;
mod cluster_roles;
mod e2e;
mod inbound;
mod kb_quality;
mod limits;
mod malformed;
mod protocol_doc;
mod race;
mod rest;
mod resume;
mod shutdown;
mod softphone;
mod store_outage;
mod webhooks;
mod ws_auth;
