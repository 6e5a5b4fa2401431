//! Puts the git commit into `switchboard --version` as `BUILD_GIT_COMMIT`:
//! the short hash, or `unknown` outside a git checkout (a source tarball) or
//! without git. Never fails the build.
//! (Not `SWITCHBOARD_…`: cargo also sets the variable when it runs the
//! binary, and the configuration would take it for a config key.)

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD names a branch (or holds the commit), the
    // branch's ref file or `packed-refs` holds the commit. In a worktree HEAD
    // is in its own git dir and the refs are in the common one.
    let (Some(git_dir), Some(common_dir)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) else {
        return;
    };
    let (git_dir, common_dir) = (absolute(&git_dir), absolute(&common_dir));
    // `logs/HEAD` (the reflog) changes at every move of HEAD, also when the
    // branch's ref file did not exist when this script last ran (refs packed).
    let mut watched = vec![
        git_dir.join("HEAD"),
        git_dir.join("logs").join("HEAD"),
        common_dir.join("packed-refs"),
    ];
    if let Some(branch_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common_dir.join(branch_ref));
    }
    // A path that does not exist would rerun this script on every build.
    for path in watched.iter().filter(|path| path.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// `git <args>` run in this crate's folder, its trimmed output if it succeeded.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}

/// git prints its dirs relative to the folder it ran in.
fn absolute(path: &str) -> PathBuf {
    manifest_dir().join(path)
}

fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default()
}
