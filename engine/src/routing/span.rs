//! Turns byte offsets into the line and column an admin sees in their editor,
//! including offsets inside an expression that TOML stored as a quoted string.

use std::ops::Range;

use super::RuleError;

/// The rule file being loaded.
pub(crate) struct SourceFile<'a> {
    pub(crate) text: &'a str,
    pub(crate) name: &'a str,
}

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl SourceFile<'_> {
    pub(crate) fn location(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    pub(crate) fn error_at(&self, offset: usize, message: impl Into<String>) -> RuleError {
        self.error_at_location(self.location(offset), message)
    }

    pub(crate) fn error_at_location(
        &self,
        location: Location,
        message: impl Into<String>,
    ) -> RuleError {
        RuleError {
            file: self.name.to_owned(),
            line: location.line,
            column: location.column,
            message: message.into(),
        }
    }

    /// The file offset of byte `offset` of a string value whose TOML token
    /// (quotes included) is at `token`. Escapes in basic strings are walked so
    /// that the column still points at the right character.
    pub(crate) fn offset_in_string(&self, token: &Range<usize>, offset: usize) -> usize {
        let Some(raw) = self.text.get(token.clone()) else {
            return token.start;
        };
        let quote_len = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else if raw.starts_with('"') || raw.starts_with('\'') {
            1
        } else {
            // Not a quoted string (a bare value): point at the value.
            return token.start;
        };
        let basic = raw.starts_with('"');
        let mut body_start = quote_len;
        if quote_len == 3 {
            // A newline right after the opening delimiter is not part of the value.
            if raw[body_start..].starts_with("\r\n") {
                body_start += 2;
            } else if raw[body_start..].starts_with('\n') {
                body_start += 1;
            }
        }
        let body = &raw[body_start..raw.len().saturating_sub(quote_len).max(body_start)];
        let in_body = if basic {
            raw_offset_of_decoded(body, offset)
        } else {
            offset.min(body.len())
        };
        token.start + body_start + in_body
    }
}

/// Walks a basic string's raw text until `decoded` bytes of its value are behind.
fn raw_offset_of_decoded(body: &str, decoded: usize) -> usize {
    let bytes = body.as_bytes();
    let (mut raw, mut value) = (0, 0);
    while raw < bytes.len() && value < decoded {
        if bytes[raw] != b'\\' {
            let width = body[raw..].chars().next().map_or(1, char::len_utf8);
            raw += width;
            value += width;
            continue;
        }
        let hex_digits = match bytes.get(raw + 1) {
            Some(b'u') => 4,
            Some(b'U') => 8,
            Some(b'x') => 2,
            Some(b' ' | b'\t' | b'\r' | b'\n') => {
                // Line-ending backslash: the backslash and all whitespace after it vanish.
                raw += 1;
                while raw < bytes.len() && bytes[raw].is_ascii_whitespace() {
                    raw += 1;
                }
                continue;
            }
            _ => {
                raw += 2;
                value += 1;
                continue;
            }
        };
        let code = body
            .get(raw + 2..raw + 2 + hex_digits)
            .and_then(|digits| u32::from_str_radix(digits, 16).ok())
            .and_then(char::from_u32);
        raw += 2 + hex_digits;
        value += code.map_or(1, char::len_utf8);
    }
    raw.min(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, token: Range<usize>, offset: usize, expected: (usize, usize)) {
        let file = SourceFile {
            text,
            name: "rules.toml",
        };
        let location = file.location(file.offset_in_string(&token, offset));
        assert_eq!(
            (location.line, location.column),
            expected,
            "{text:?} @ {offset}"
        );
    }

    #[test]
    fn offsets_inside_strings() {
        let literal = "x = 'a == \"b\"'";
        check(literal, 4..literal.len(), 0, (1, 6));
        check(literal, 4..literal.len(), 5, (1, 11));
        let basic = "x = \"a == \\\"b\\\"\"";
        // Offset 6 of the value `a == "b"` is `b`, after one escape.
        check(basic, 4..basic.len(), 6, (1, 13));
        let unicode = "x = \"\\u9000 c\"";
        // `退` is 3 bytes in the value but 6 characters in the file.
        check(unicode, 4..unicode.len(), 4, (1, 13));
        let multi = "x = '''\nab\ncd'''";
        check(multi, 4..multi.len(), 4, (3, 2));
        let chinese = "# 注释\nx = '退款 == y'";
        check(chinese, 13..chinese.len(), 7, (2, 9));
    }
}
