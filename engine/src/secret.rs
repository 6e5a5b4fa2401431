//! [`Secret`]: a configured key or password that never shows in a log line,
//! a `Debug` print or `check-config`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a set secret prints as, wherever it is printed.
pub const REDACTED: &str = "<redacted>";

/// A string that is read with [`Secret::expose`] only where it is used (to
/// sign, to authenticate) and otherwise prints as `<redacted>`.
///
/// `Debug` and `Serialize` both redact: a configuration is serialized only
/// to show it (`check-config`) or to list its keys, never to be read back.
/// An empty secret prints as `""`, so "not set" stays visible.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Not configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes (validation: "at least 32 characters").
    pub fn len(&self) -> usize {
        self.0.len()
    }

    fn shown(&self) -> &str {
        if self.0.is_empty() { "" } else { REDACTED }
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Secret(secret.to_owned())
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Secret(secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.shown(), f)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.shown())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_secret_is_redacted_and_an_empty_one_is_shown_empty() {
        let check = |secret: &str, shown: &str| {
            let secret = Secret::from(secret);
            assert_eq!(format!("{secret:?}"), format!("{shown:?}"));
            assert_eq!(
                serde_json::to_string(&secret).unwrap(),
                format!("{shown:?}")
            );
        };
        check("hunter2-hunter2-hunter2", "<redacted>");
        check("", "");
    }

    #[test]
    fn deserializes_from_a_plain_string_and_exposes_it() {
        let secret: Secret = serde_json::from_str("\"s3cret\"").unwrap();
        assert_eq!(secret.expose(), "s3cret");
        assert_eq!(secret.len(), 6);
        assert!(!secret.is_empty());
    }
}
