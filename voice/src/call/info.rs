//! DTMF in SIP INFO: `application/dtmf-relay` (`Signal=5` and
//! `Duration=160` lines, as Cisco and most phones send it) and
//! `application/dtmf` (the bare key).

use rsipstack::sip::Request;

/// What an INFO carries, for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum InfoBody {
    /// Keys pressed, in order.
    Digits(String),
    /// No body: a keep-alive (answered 200).
    Empty,
    /// A body of a type we do not read (answered 415).
    Unsupported(String),
    /// A DTMF body without a key we know (answered 400).
    Bad(String),
}

/// Reads an INFO request's body.
pub(super) fn info_body(request: &Request) -> InfoBody {
    if request.body.is_empty() {
        return InfoBody::Empty;
    }
    let content_type = request
        .headers
        .iter()
        .find(|header| {
            let name = header.name();
            name.eq_ignore_ascii_case("Content-Type") || name.eq_ignore_ascii_case("c")
        })
        .map(|header| header.value().to_owned())
        .unwrap_or_default();
    parse(&content_type, &request.body)
}

fn parse(content_type: &str, body: &[u8]) -> InfoBody {
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Ok(text) = std::str::from_utf8(body) else {
        return InfoBody::Bad("the body is not UTF-8".into());
    };
    let key = match media_type.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|line| {
            let (name, value) = line.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| value.trim())
        }),
        "application/dtmf" => Some(text.trim()),
        other => return InfoBody::Unsupported(format!("content type `{other}`")),
    };
    match key.and_then(digit) {
        Some(digit) => InfoBody::Digits(digit.to_string()),
        None => InfoBody::Bad(format!("no DTMF key in `{}`", text.trim())),
    }
}

/// A key as written in a DTMF body: `0`–`9`, `*`, `#`, `A`–`D`, or the
/// RFC 4733 event numbers 10 (`*`) and 11 (`#`).
fn digit(key: &str) -> Option<char> {
    match key {
        "10" => Some('*'),
        "11" => Some('#'),
        _ => {
            let mut chars = key.chars();
            let key = chars.next()?.to_ascii_uppercase();
            (chars.next().is_none() && matches!(key, '0'..='9' | '*' | '#' | 'A'..='D'))
                .then_some(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_bodies() {
        let relay = "application/dtmf-relay";
        let digits = |digits: &str| InfoBody::Digits(digits.into());
        assert_eq!(parse(relay, b"Signal=5\r\nDuration=160\r\n"), digits("5"));
        assert_eq!(parse(relay, b"signal = #\nduration=100"), digits("#"));
        assert_eq!(parse(relay, b"Signal=11\r\n"), digits("#"));
        assert_eq!(parse(relay, b"Signal=10\r\n"), digits("*"));
        assert_eq!(
            parse("Application/DTMF-Relay; x=1", b"Signal=d"),
            digits("D")
        );
        assert_eq!(parse("application/dtmf", b"7\r\n"), digits("7"));
        assert!(matches!(parse(relay, b"Duration=160"), InfoBody::Bad(_)));
        assert!(matches!(parse(relay, b"Signal=12"), InfoBody::Bad(_)));
        assert!(matches!(parse(relay, b"Signal=55"), InfoBody::Bad(_)));
        assert!(matches!(parse(relay, b"Signal=\xff"), InfoBody::Bad(_)));
        assert!(matches!(
            parse("application/media_control+xml", b"<x/>"),
            InfoBody::Unsupported(_)
        ));
        assert!(matches!(parse("", b"5"), InfoBody::Unsupported(_)));
    }
}
