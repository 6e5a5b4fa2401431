//! Splits an expression into tokens. Offsets are byte offsets inside the
//! expression text; the rule file turns them into line and column.

use std::ops::Range;
use std::sync::Arc;

use super::parser::ExprError;

/// One token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) span: Range<usize>,
}

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// A field path such as `customer.tier` or `agent.skills.billing`.
    Ident(Arc<str>),
    /// A quoted string, escapes already applied.
    Str(Arc<str>),
    Num(f64),
    True,
    False,
    And,
    Or,
    Not,
    In,
    Has,
    Contains,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

impl TokenKind {
    /// How an error message shows the token.
    pub(crate) fn describe(&self) -> String {
        let text = match self {
            TokenKind::Ident(name) => return format!("`{name}`"),
            TokenKind::Str(text) => return format!("string {:?}", &**text),
            TokenKind::Num(n) => return format!("number `{n}`"),
            TokenKind::True => "true",
            TokenKind::False => "false",
            TokenKind::And => "AND",
            TokenKind::Or => "OR",
            TokenKind::Not => "NOT",
            TokenKind::In => "IN",
            TokenKind::Has => "HAS",
            TokenKind::Contains => "CONTAINS",
            TokenKind::Eq => "==",
            TokenKind::Ne => "!=",
            TokenKind::Lt => "<",
            TokenKind::Le => "<=",
            TokenKind::Gt => ">",
            TokenKind::Ge => ">=",
            TokenKind::LParen => "(",
            TokenKind::RParen => ")",
            TokenKind::LBracket => "[",
            TokenKind::RBracket => "]",
            TokenKind::Comma => ",",
        };
        format!("`{text}`")
    }
}

/// Splits `source` into tokens, or reports the first character that cannot start one.
pub(crate) fn tokenize(source: &str) -> Result<Vec<Token>, ExprError> {
    let mut tokens = Vec::new();
    let bytes = source.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() {
        let start = pos;
        let byte = bytes[pos];
        let single = |kind| Some((kind, 1));
        let fixed: Option<(TokenKind, usize)> = match byte {
            b' ' | b'\t' | b'\r' | b'\n' => {
                pos += 1;
                continue;
            }
            b'(' => single(TokenKind::LParen),
            b')' => single(TokenKind::RParen),
            b'[' => single(TokenKind::LBracket),
            b']' => single(TokenKind::RBracket),
            b',' => single(TokenKind::Comma),
            b'=' if bytes.get(pos + 1) == Some(&b'=') => Some((TokenKind::Eq, 2)),
            b'!' if bytes.get(pos + 1) == Some(&b'=') => Some((TokenKind::Ne, 2)),
            b'<' if bytes.get(pos + 1) == Some(&b'=') => Some((TokenKind::Le, 2)),
            b'>' if bytes.get(pos + 1) == Some(&b'=') => Some((TokenKind::Ge, 2)),
            b'<' => single(TokenKind::Lt),
            b'>' => single(TokenKind::Gt),
            _ => None,
        };
        if let Some((kind, len)) = fixed {
            pos += len;
            tokens.push(Token {
                kind,
                span: start..pos,
            });
            continue;
        }
        let kind = match byte {
            b'"' | b'\'' => {
                let (text, end) = lex_string(source, start)?;
                pos = end;
                TokenKind::Str(text)
            }
            b'0'..=b'9' | b'-' => {
                let (number, end) = lex_number(source, start)?;
                pos = end;
                TokenKind::Num(number)
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let end = lex_ident_end(bytes, start);
                pos = end;
                keyword_or_ident(&source[start..end])
            }
            _ => return Err(unexpected_char(source, start)),
        };
        tokens.push(Token {
            kind,
            span: start..pos,
        });
    }
    Ok(tokens)
}

fn unexpected_char(source: &str, at: usize) -> ExprError {
    let c = source[at..].chars().next().unwrap_or('?');
    let hint = match c {
        '=' => "; use `==` to compare",
        '!' => "; use `NOT` or `!=`",
        '&' => "; use `AND`",
        '|' => "; use `OR`",
        '“' | '”' | '‘' | '’' => "; use straight quotes \" or '",
        _ => "",
    };
    ExprError::new(
        at..at + c.len_utf8(),
        format!("unexpected character `{c}`{hint}"),
    )
}

/// Field paths: a name, then `.`-separated segments that may also hold digits
/// and `-` (skill names such as `agent.skills.after-sales`).
fn lex_ident_end(bytes: &[u8], start: usize) -> usize {
    let is_segment = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut end = start + 1;
    while end < bytes.len() {
        let b = bytes[end];
        let continues = b.is_ascii_alphanumeric()
            || b == b'_'
            || (b == b'-' && bytes[start..end].contains(&b'.'))
            || (b == b'.' && bytes.get(end + 1).is_some_and(|&next| is_segment(next)));
        if !continues {
            break;
        }
        end += 1;
    }
    end
}

fn keyword_or_ident(word: &str) -> TokenKind {
    const KEYWORDS: [(&str, TokenKind); 8] = [
        ("and", TokenKind::And),
        ("or", TokenKind::Or),
        ("not", TokenKind::Not),
        ("in", TokenKind::In),
        ("has", TokenKind::Has),
        ("contains", TokenKind::Contains),
        ("true", TokenKind::True),
        ("false", TokenKind::False),
    ];
    KEYWORDS
        .iter()
        .find(|(keyword, _)| keyword.eq_ignore_ascii_case(word))
        .map(|(_, kind)| kind.clone())
        .unwrap_or_else(|| TokenKind::Ident(Arc::from(word)))
}

/// A quoted string starting at `start`; returns its text and the offset after the closing quote.
fn lex_string(source: &str, start: usize) -> Result<(Arc<str>, usize), ExprError> {
    let quote = source.as_bytes()[start] as char;
    let mut text = String::new();
    let mut chars = source[start + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        let at = start + 1 + i;
        if c == quote {
            return Ok((Arc::from(text), at + 1));
        }
        if c != '\\' {
            text.push(c);
            continue;
        }
        let escaped = match chars.next() {
            Some((_, 'n')) => '\n',
            Some((_, 't')) => '\t',
            Some((_, '\\')) => '\\',
            Some((_, '"')) => '"',
            Some((_, '\'')) => '\'',
            Some((_, other)) => {
                return Err(ExprError::new(
                    at..at + 1 + other.len_utf8(),
                    format!(
                        "unknown escape `\\{other}` in string; use \\\\, \\\", \\', \\n or \\t"
                    ),
                ));
            }
            None => break,
        };
        text.push(escaped);
    }
    Err(ExprError::new(
        start..source.len(),
        "unterminated string: add the closing quote",
    ))
}

/// A number such as `3`, `-1` or `2.5`.
fn lex_number(source: &str, start: usize) -> Result<(f64, usize), ExprError> {
    let bytes = source.as_bytes();
    let mut end = start;
    if bytes[end] == b'-' {
        end += 1;
    }
    let digits_start = end;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    let mut valid = end > digits_start;
    if valid && end < bytes.len() && bytes[end] == b'.' {
        end += 1;
        let fraction_start = end;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        valid = end > fraction_start;
    }
    // `2x` or `1.2.3` is one bad word, not a number followed by a name.
    while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'.') {
        end += 1;
        valid = false;
    }
    let text = &source[start..end];
    match text.parse::<f64>() {
        Ok(number) if valid && number.is_finite() => Ok((number, end)),
        _ => Err(ExprError::new(
            start..end.max(start + 1),
            format!("invalid number `{text}`"),
        )),
    }
}
