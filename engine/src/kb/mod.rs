//! The knowledge base: help articles in Chinese and English, and their
//! full-text search ([`KbIndex`]).

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::ids::ArticleId;
use crate::{Millis, text};

mod index;

pub use index::{KbError, KbIndex, SearchHit};

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest body, in characters.
pub const MAX_BODY_CHARS: usize = 50_000;
/// Most tags on one article or template.
pub const MAX_TAGS: usize = 16;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// Longest id (`kb-zh-order-delay`, `tpl-order-delay`), in characters.
pub const MAX_ID_CHARS: usize = 64;

/// A help article.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    /// Id: lowercase letters, digits and `-`.
    pub id: ArticleId,
    /// BCP 47 language (`zh-CN`, `en`).
    pub language: String,
    /// One line.
    pub title: String,
    /// The text.
    pub body: String,
    /// Labels, searched like the text.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When it last changed.
    #[serde(default)]
    pub updated_at: Millis,
}

impl Article {
    /// Checks every field, trims title and tags; errors name the field.
    pub fn validated(mut self) -> Result<Article, EngineError> {
        check_id("id", self.id.as_str())?;
        check_language(&self.language)?;
        self.title = text::required("title", &self.title, MAX_TITLE_CHARS)?;
        text::required("body", &self.body, MAX_BODY_CHARS)?;
        self.tags = text::tags("tags", self.tags, MAX_TAGS, MAX_TAG_CHARS)?;
        Ok(self)
    }
}

/// An id of an article or template: 1 to 64 of `a-z`, `0-9`, `-`.
pub fn check_id(field: &'static str, id: &str) -> Result<(), EngineError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    match ok {
        true => Ok(()),
        false => Err(EngineError::Invalid {
            field,
            reason: format!("`{id}` must be 1 to {MAX_ID_CHARS} of a-z, 0-9 or `-`"),
        }),
    }
}

/// A BCP 47 tag of the simple kind: `zh`, `zh-CN`, `en`, `en-GB`.
pub fn check_language(language: &str) -> Result<(), EngineError> {
    let mut parts = language.split('-');
    let primary_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    let rest_ok =
        parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    match primary_ok && rest_ok {
        true => Ok(()),
        false => Err(EngineError::Invalid {
            field: "language",
            reason: format!("`{language}` is not a language tag such as zh-CN or en"),
        }),
    }
}

#[cfg(test)]
mod tests;
