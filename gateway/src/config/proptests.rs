//! Property tests of configuration loading: any value in the file or in an
//! environment variable loads or is refused naming the key (and the
//! variable it came from), never a panic. `PROPTEST_CASES` raises the
//! number of cases.

use proptest::prelude::*;

use super::{Config, ConfigError};

/// Every `section.key` of the configuration.
fn known_keys() -> Vec<(String, String)> {
    let table = toml::Table::try_from(Config::default()).unwrap();
    table
        .iter()
        .flat_map(|(section, keys)| {
            let keys = keys.as_table().cloned().unwrap_or_default();
            keys.keys()
                .map(|key| (section.clone(), key.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A refusal names a key of the configuration (the one set, or the one a
/// cross-check blames) or, for an unknown key, the key as written.
fn check_refusal(
    err: &ConfigError,
    set: &str,
    variable: Option<&str>,
) -> Result<(), TestCaseError> {
    let ConfigError::Key {
        key,
        origin,
        reason,
    } = err
    else {
        return Err(TestCaseError::fail(format!("not a key error: {err}")));
    };
    prop_assert!(!reason.is_empty(), "{}", err);
    let names_a_known_key = known_keys().iter().any(|(section, name)| {
        let dotted = format!("{section}.{name}");
        key == &dotted
            || key.starts_with(&format!("{dotted}."))
            || key.starts_with(&format!("{dotted}["))
    });
    let names_what_was_set = key == set || set.starts_with(&format!("{key}."));
    prop_assert!(names_a_known_key || names_what_was_set, "{}", err);
    if key == set
        && let Some(variable) = variable
    {
        prop_assert_eq!(origin, &format!(" (from {variable})"));
    }
    Ok(())
}

/// TOML values of every kind, as text.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        (-1e9..1e9f64).prop_map(|f| format!("{f:?}")),
        "\\PC{0,16}".prop_map(|s| format!("{s:?}")),
        prop::collection::vec(any::<u16>(), 0..3).prop_map(|v| format!("{v:?}")),
        Just("{ a = 1 }".to_string()),
        "\\PC{0,12}",
    ]
}

fn key() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        8 => prop::sample::select(known_keys()),
        1 => ("[a-z]{1,8}", "[a-z_]{1,12}"),
    ]
}

proptest! {
    #[test]
    fn any_file_value_loads_or_names_the_key((section, name) in key(), value in toml_value()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, format!("[{section}]\n{name} = {value}\n")).unwrap();
        match Config::load(Some(&path), Vec::new()) {
            // A value the configuration takes is fine: `load` validated it.
            Ok(_) => {}
            Err(ConfigError::Syntax { reason, .. }) => prop_assert!(reason.contains("line"), "{}", reason),
            Err(err) => check_refusal(&err, &format!("{section}.{name}"), None)?,
        }
    }

    #[test]
    fn any_environment_value_loads_or_names_the_key_and_variable(
        (section, name) in key(),
        value in toml_value(),
    ) {
        let variable = format!("SWITCHBOARD_{}_{}", section.to_uppercase(), name.to_uppercase());
        match Config::load(None, [(variable.clone(), value)]) {
            // A value the configuration takes is fine: `load` validated it.
            Ok(_) => {}
            Err(err) => check_refusal(&err, &format!("{section}.{name}"), Some(&variable))?,
        }
    }
}
