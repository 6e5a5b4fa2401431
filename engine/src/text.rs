//! Checks on user-written text fields, with errors that name the field.

use crate::error::EngineError;

fn invalid(field: &'static str, reason: impl Into<String>) -> EngineError {
    EngineError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// At most `max_chars` characters (not bytes: Chinese counts one per character).
pub fn bounded(field: &'static str, value: &str, max_chars: usize) -> Result<(), EngineError> {
    let n_chars = value.chars().count();
    match n_chars <= max_chars {
        true => Ok(()),
        false => Err(invalid(
            field,
            format!("at most {max_chars} characters, got {n_chars}"),
        )),
    }
}

/// Trimmed, not empty, at most `max_chars` characters.
pub fn required(field: &'static str, value: &str, max_chars: usize) -> Result<String, EngineError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    bounded(field, trimmed, max_chars)?;
    Ok(trimmed.to_owned())
}

/// Labels: each trimmed, non-empty and short; duplicates dropped, order kept.
pub fn tags(
    field: &'static str,
    tags: Vec<String>,
    max_tags: usize,
    max_chars: usize,
) -> Result<Vec<String>, EngineError> {
    if tags.len() > max_tags {
        return Err(invalid(
            field,
            format!("at most {max_tags} tags, got {}", tags.len()),
        ));
    }
    let mut kept: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = required(field, &tag, max_chars)?;
        if !kept.contains(&tag) {
            kept.push(tag);
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(result: Result<Vec<String>, EngineError>, expected: Result<&[&str], &str>) {
        match (result, expected) {
            (Ok(tags), Ok(expected)) => assert_eq!(tags, expected),
            (Err(err), Err(expected)) => assert_eq!(err.to_string(), expected),
            (got, expected) => panic!("got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn tags_are_trimmed_deduplicated_and_bounded() {
        let owned = |tags: &[&str]| tags.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        check(
            tags("tags", owned(&[" 物流 ", "vip", "物流"]), 4, 8),
            Ok(&["物流", "vip"]),
        );
        check(
            tags("tags", owned(&["a", " "]), 4, 8),
            Err("invalid `tags`: must not be empty"),
        );
        check(
            tags("tags", owned(&["a", "b", "c"]), 2, 8),
            Err("invalid `tags`: at most 2 tags, got 3"),
        );
        check(
            tags("tags", owned(&["一二三四五"]), 4, 4),
            Err("invalid `tags`: at most 4 characters, got 5"),
        );
    }
}
