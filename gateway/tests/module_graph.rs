//! The gateway's top-level modules depend on each other without a cycle:
//! shared types live in leaf modules (`wire`, `error`, `extract`, `rate`, …)
//! rather than in whichever of `rest`, `ws` or `webhooks` used them first.
//!
//! A module's dependencies are the `crate::<module>` paths in the code of
//! its files (`use` lines and paths written inline; comments are not code).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level modules named by `crate::` paths in `code`, comments left out.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap();
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a, b::C};`
                let group = group.split('}').next().unwrap();
                for item in group.split(',') {
                    modules.insert(module_name(item.trim()));
                }
            } else {
                modules.insert(module_name(rest));
            }
        }
    }
    modules.retain(|module| !module.is_empty());
    modules
}

fn module_name(path: &str) -> String {
    path.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Top-level module → the other top-level modules its files use.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let code = std::fs::read_to_string(&file).unwrap();
        let uses = graph.entry(module.clone()).or_default();
        uses.extend(
            crate_paths(&code)
                .into_iter()
                .filter(|used| *used != module),
        );
    }
    graph
}

/// A cycle of `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|on_path| on_path == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for used in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(used, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_extraction_reads_use_lines_groups_and_inline_paths_but_not_comments() {
    let code = "use crate::wire::WireSession;\n\
                use crate::{auth, error::HttpError};\n\
                let x = crate::metrics::record(1); // crate::server\n\
                //! [`crate::rest`]\n";
    assert_eq!(
        crate_paths(code),
        ["auth", "error", "metrics", "wire"]
            .map(String::from)
            .into()
    );
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(
        find_cycle(&graph),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
}

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    for module in ["rest", "ws", "webhooks", "wire", "state", "server"] {
        assert!(
            graph.contains_key(module),
            "{module} not found in {graph:?}"
        );
    }
    assert!(
        graph["server"].len() >= 8,
        "the extraction found too little: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "gateway modules import each other in a cycle: {}\nthe graph: {graph:#?}",
            cycle.join(" → ")
        );
    }
    assert_eq!(
        graph["wire"],
        BTreeSet::new(),
        "wire is a leaf: it uses no other module of the gateway"
    );
}
