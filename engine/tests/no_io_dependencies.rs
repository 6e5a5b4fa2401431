//! `engine` does no IO and never awaits (ARCHITECTURE.md), and its
//! dependencies say so: no async runtime or database client anywhere in its
//! normal dependency tree, and no async machinery of its own. Persistence
//! lives in the `store` crate. Read from `cargo metadata`, for every target
//! platform.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

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

#[test]
fn engine_depends_on_no_runtime_database_client_or_async_machinery() {
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
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
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
    let engine_id = name_of
        .iter()
        .find_map(|(id, name)| (*name == "engine").then_some(*id))
        .expect("engine is a workspace member");

    let direct: BTreeSet<&str> = normal_dependencies(engine_id)
        .into_iter()
        .map(|id| name_of[id])
        .collect();
    let named: Vec<&str> = NOT_DIRECT
        .into_iter()
        .filter(|name| direct.contains(name))
        .collect();
    assert!(
        named.is_empty(),
        "engine/Cargo.toml depends on {named:?}; async code belongs in `store` or `actors`"
    );

    let mut seen = BTreeSet::from([engine_id]);
    let mut to_visit = vec![engine_id];
    while let Some(id) = to_visit.pop() {
        for dependency in normal_dependencies(id) {
            if seen.insert(dependency) {
                to_visit.push(dependency);
            }
        }
    }
    let in_tree: BTreeSet<&str> = seen.iter().map(|id| name_of[id]).collect();
    let found: Vec<&str> = NOT_IN_TREE
        .into_iter()
        .filter(|name| in_tree.contains(name))
        .collect();
    assert!(
        found.is_empty(),
        "engine's dependency tree holds {found:?} (`cargo tree -p engine -e normal -i <name>` says through what); IO belongs in `store`"
    );
}
