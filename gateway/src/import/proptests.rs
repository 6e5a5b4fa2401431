//! Property tests of the import file: any TOML or JSON is read or refused
//! without a panic, every problem names its entry and field
//! (`agent[3].role`), and generated valid files plan to what they say.
//! `PROPTEST_CASES` raises the number of cases.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{ImportFile, plan, read_file};
use crate::ws::frames::proptests::json_value;

/// Reads `text` as an import file named `import.<extension>`.
fn read(text: &str, extension: &str) -> anyhow::Result<ImportFile> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("import.{extension}"));
    std::fs::write(&path, text).unwrap();
    read_file(&path)
}

/// A plan's problems are listed one per line after a header; each names
/// `<kind>[<index>].<field>`.
fn check_problems(message: &str) -> Result<(), TestCaseError> {
    let mut lines = message.lines();
    let header = lines.next().unwrap_or_default();
    prop_assert!(
        header.ends_with("problem(s), nothing was written:"),
        "{}",
        message
    );
    for line in lines.filter(|line| !line.starts_with("… and")) {
        let (kind, rest) = line.split_once('[').unwrap_or_default();
        prop_assert!(["group", "agent", "customer"].contains(&kind), "{}", line);
        let (index, rest) = rest.split_once("].").unwrap_or_default();
        prop_assert!(index.parse::<usize>().is_ok(), "{}", line);
        let (field, reason) = rest.split_once(": ").unwrap_or_default();
        prop_assert!(!field.is_empty() && !reason.is_empty(), "{}", line);
    }
    Ok(())
}

/// Entries with the file's field names and arbitrary values.
fn entry() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec![
        "id",
        "name",
        "role",
        "groups",
        "skills",
        "capacity",
        "exclusive",
        "languages",
        "tier",
        "tags",
        "language",
        "identities",
        "sla_threshold_secs",
        "sla_target_pct",
        "bogus",
    ]);
    prop::collection::btree_map(field, json_value(), 0..6)
        .prop_map(|map| Value::Object(map.into_iter().map(|(k, v)| (k.into(), v)).collect()))
}

fn import_document() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop::sample::select(vec!["group", "agent", "customer", "agents", "other"]),
        prop::collection::vec(entry(), 0..4),
        0..3,
    )
    .prop_map(|map| json!(map))
}

/// A valid agent: (id, role, groups, skills).
type AgentSpec = (
    String,
    &'static str,
    Vec<&'static str>,
    BTreeMap<String, u8>,
);

fn agent_spec() -> impl Strategy<Value = AgentSpec> {
    (
        "[a-z][a-z0-9.]{0,15}",
        prop::sample::select(vec!["junior", "expert", "supervisor"]),
        prop::sample::subsequence(vec!["default", "vip"], 1..=2),
        prop::collection::btree_map("[a-z]{1,8}", 1..=5u8, 0..3),
    )
}

proptest! {
    #[test]
    fn any_json_document_is_read_or_refused_with_its_path(document in import_document()) {
        match read(&document.to_string(), "json") {
            Ok(file) => {
                if let Err(err) = plan(file, &BTreeSet::new()) {
                    check_problems(&format!("{err:#}"))?;
                }
            }
            Err(err) => {
                let message = format!("{err:#}");
                prop_assert!(message.starts_with("invalid import file "), "{}", message);
            }
        }
    }

    #[test]
    fn any_text_is_refused_without_a_panic(text in "\\PC{0,80}", json in any::<bool>()) {
        if let Ok(file) = read(&text, if json { "json" } else { "toml" })
            && let Err(err) = plan(file, &BTreeSet::new()) {
                check_problems(&format!("{err:#}"))?;
            }
    }

    #[test]
    fn valid_files_plan_to_what_they_say_and_bad_roles_are_named(
        agents in prop::collection::vec(agent_spec(), 1..6),
        bad in any::<prop::sample::Index>(),
    ) {
        let ids: BTreeSet<&String> = agents.iter().map(|agent| &agent.0).collect();
        prop_assume!(ids.len() == agents.len());
        let mut text = String::from("[[group]]\nid = \"default\"\n[[group]]\nid = \"vip\"\n");
        for (id, role, groups, skills) in &agents {
            let skills: Vec<String> = skills.iter().map(|(s, l)| format!("{s} = {l}")).collect();
            text.push_str(&format!(
                "[[agent]]\nid = \"{id}\"\nrole = \"{role}\"\ngroups = {groups:?}\nskills = {{ {} }}\n",
                skills.join(", ")
            ));
        }
        let file = read(&text, "toml").map_err(|err| TestCaseError::fail(format!("{err:#}\n{text}")))?;
        let planned = plan(file, &BTreeSet::new())
            .map_err(|err| TestCaseError::fail(format!("{err:#}\n{text}")))?;
        prop_assert_eq!(planned.groups.len(), 2);
        prop_assert_eq!(planned.agents.len(), agents.len());
        for (agent, (id, role, groups, skills)) in planned.agents.iter().zip(&agents) {
            prop_assert_eq!(agent.id.as_str(), id.as_str());
            prop_assert_eq!(agent.role.as_str(), *role);
            let planned_groups: Vec<&str> = agent.groups.iter().map(|g| g.as_str()).collect();
            prop_assert_eq!(&planned_groups, groups);
            prop_assert_eq!(&agent.skills, skills);
        }

        // The same file with one role misspelt names that agent's role.
        let bad = bad.index(agents.len());
        let marker = format!("id = \"{}\"\nrole = \"{}\"", agents[bad].0, agents[bad].1);
        let broken = text.replacen(&marker, &format!("id = \"{}\"\nrole = \"wizard\"", agents[bad].0), 1);
        let err = plan(read(&broken, "toml").unwrap(), &BTreeSet::new()).unwrap_err();
        let message = format!("{err:#}");
        check_problems(&message)?;
        prop_assert!(message.contains(&format!("agent[{bad}].role: ")), "{}", message);
    }
}
