//! The declared minimum Rust version (`rust-version` in the root
//! Cargo.toml) holds: it is at least what our own code needs, and no
//! dependency asks for a newer Rust. Only one toolchain is installed where
//! this runs, so the check reads the manifests (`cargo metadata`); clippy's
//! `incompatible_msrv` lint covers our own use of newer standard library APIs.

use std::process::Command;

use serde_json::Value;

/// let-chains (`if let … && …`), which our code uses, are stable since 1.88.
const NEEDED_BY_OUR_CODE: &str = "1.88";

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
