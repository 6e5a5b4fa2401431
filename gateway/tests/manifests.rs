//! What the workspace's manifests promise, read from `cargo metadata`:
//!
//! - The declared minimum Rust version (`rust-version` in the root
//!   Cargo.toml) holds: it is at least what our own code needs, and no
//!   dependency asks for a newer Rust. Only one toolchain is installed where
//!   this runs, so the check reads the manifests; clippy's
//!   `incompatible_msrv` lint covers our own use of newer standard library
//!   APIs.
//! - `engine` does no IO and never awaits (ARCHITECTURE.md), and its
//!   dependencies say so: no async runtime or database client anywhere in
//!   its normal dependency tree, and no async machinery of its own.
//!   Persistence lives in the `store` crate.
//! - `actors` opens no socket: no HTTP or WebSocket crate anywhere in its
//!   normal dependency tree (the gateway delivers webhooks for it).

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// let-chains (`if let … && …`), which our code uses, are stable since 1.88.
const NEEDED_BY_OUR_CODE: &str = "1.88";

/// The workspace as `cargo metadata` sees it, for every target platform.
fn cargo_metadata() -> Value {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `1.88` or `1.88.0` as (1, 88, 0).
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|part| {
        part.parse::<u64>()
            .unwrap_or_else(|_| panic!("`{text}` is not a Rust version"))
    });
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

#[test]
fn the_declared_rust_version_covers_our_code_and_every_dependency() {
    let metadata = cargo_metadata();
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages = metadata["packages"].as_array().unwrap();
    let (ours, dependencies): (Vec<&Value>, Vec<&Value>) = packages
        .iter()
        .partition(|package| members.contains(&package["id"].as_str().unwrap()));

    let declared = env!("CARGO_PKG_RUST_VERSION");
    assert!(
        version(declared) >= version(NEEDED_BY_OUR_CODE),
        "rust-version = \"{declared}\" in Cargo.toml, but our code needs {NEEDED_BY_OUR_CODE}"
    );
    for package in &ours {
        assert_eq!(
            package["rust_version"].as_str(),
            Some(declared),
            "{} must inherit the workspace's rust-version",
            package["name"]
        );
    }
    let too_new: Vec<String> = dependencies
        .iter()
        .filter_map(|package| {
            let needs = package["rust_version"].as_str()?;
            (version(needs) > version(declared)).then(|| {
                format!(
                    "{} {} needs Rust {needs}",
                    package["name"].as_str().unwrap(),
                    package["version"].as_str().unwrap()
                )
            })
        })
        .collect();
    assert!(
        too_new.is_empty(),
        "rust-version = \"{declared}\" in Cargo.toml, but: {}",
        too_new.join("; ")
    );
}

#[test]
fn versions_compare_by_number() {
    assert_eq!(version("1.88"), (1, 88, 0));
    assert!(version("1.88.0") >= version("1.88"));
    assert!(version("1.100") > version("1.88.1"));
    assert!(version("1.9") < version("1.88"));
}

/// Crates that must not be anywhere below `engine`: runtimes, sockets and
/// database clients.
const NOT_IN_TREE: [&str; 6] = [
    "tokio",
    "mio",
    "rusqlite",
    "libsqlite3-sys",
    "scylla",
    "ractor",
];

/// Crates `engine` must not name itself (a dependency may still use them
/// internally, as tantivy does): async code has no place in `engine`.
const NOT_DIRECT: [&str; 3] = ["async-trait", "futures-util", "futures"];

fn is_normal(dependency: &Value) -> bool {
    dependency["dep_kinds"]
        .as_array()
        .unwrap()
        .iter()
        .any(|kind| kind["kind"].is_null())
}

/// One workspace crate's normal (not dev or build) dependencies, by name:
/// its direct ones and its whole tree.
struct Dependencies {
    direct: BTreeSet<String>,
    tree: BTreeSet<String>,
}

fn normal_dependencies_of(metadata: &Value, crate_name: &str) -> Dependencies {
    let name_of: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            (
                package["id"].as_str().unwrap(),
                package["name"].as_str().unwrap(),
            )
        })
        .collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| (node["id"].as_str().unwrap(), node))
        .collect();
    let normal_dependencies = |id: &str| -> Vec<&str> {
        nodes[id]["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|dependency| is_normal(dependency))
            .map(|dependency| dependency["pkg"].as_str().unwrap())
            .collect()
    };
    let crate_id = name_of
        .iter()
        .find_map(|(id, name)| (*name == crate_name).then_some(*id))
        .unwrap_or_else(|| panic!("{crate_name} is a workspace member"));
    let direct = normal_dependencies(crate_id)
        .into_iter()
        .map(|id| name_of[id].to_string())
        .collect();
    let mut seen = BTreeSet::from([crate_id]);
    let mut to_visit = vec![crate_id];
    while let Some(id) = to_visit.pop() {
        for dependency in normal_dependencies(id) {
            if seen.insert(dependency) {
                to_visit.push(dependency);
            }
        }
    }
    let tree = seen.iter().map(|id| name_of[id].to_string()).collect();
    Dependencies { direct, tree }
}

#[test]
fn engine_depends_on_no_runtime_database_client_or_async_machinery() {
    let engine = normal_dependencies_of(&cargo_metadata(), "engine");
    let named: Vec<&str> = NOT_DIRECT
        .into_iter()
        .filter(|name| engine.direct.contains(*name))
        .collect();
    assert!(
        named.is_empty(),
        "engine/Cargo.toml depends on {named:?}; async code belongs in `store` or `actors`"
    );
    let found: Vec<&str> = NOT_IN_TREE
        .into_iter()
        .filter(|name| engine.tree.contains(*name))
        .collect();
    assert!(
        found.is_empty(),
        "engine's dependency tree holds {found:?} (`cargo tree -p engine -e normal -i <name>` says through what); IO belongs in `store`"
    );
}

/// HTTP and WebSocket crates: servers, clients, sockets' protocols.
const HTTP_CRATES: [&str; 6] = [
    "axum",
    "hyper",
    "reqwest",
    "tungstenite",
    "tokio-tungstenite",
    "tower-http",
];

/// The runtime (`actors`) opens no socket and knows no wire format
/// (ARCHITECTURE.md): HTTP, signing and JSON frames stay in the gateway,
/// which implements the runtime's traits (the outbox's `Courier`).
#[test]
fn actors_depend_on_no_http_crate() {
    let actors = normal_dependencies_of(&cargo_metadata(), "actors");
    let found: Vec<&str> = HTTP_CRATES
        .into_iter()
        .filter(|name| actors.tree.contains(*name))
        .collect();
    assert!(
        found.is_empty(),
        "actors' dependency tree holds {found:?} (`cargo tree -p actors -e normal -i <name>` says through what); HTTP belongs in `gateway`"
    );
}

/// The phone channel speaks SIP and RTP, not HTTP: its SIP crate is built
/// without its WebSocket and TLS transports (voice/Cargo.toml), and the
/// gateway mounts it, never the other way round.
#[test]
fn voice_depends_on_no_http_crate_and_not_on_the_gateway() {
    let voice = normal_dependencies_of(&cargo_metadata(), "voice");
    let found: Vec<&str> = HTTP_CRATES
        .into_iter()
        .chain(["gateway", "rustls"])
        .filter(|name| voice.tree.contains(*name))
        .collect();
    assert!(
        found.is_empty(),
        "voice's dependency tree holds {found:?} (`cargo tree -p voice -e normal -i <name>` says through what)"
    );
}
