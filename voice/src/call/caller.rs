//! Who is calling: the number and name an INVITE signals, from
//! P-Asserted-Identity (what a trunk vouches for) if present, else From.

use rsipstack::sip::Request;

/// The caller as signalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user part of the URI (`+8613800000001`), or the number of a
    /// `tel:` URI: the customer's `phone` identity.
    pub number: String,
    /// The display name in front of the URI, unquoted; `None` when absent.
    pub display_name: Option<String>,
}

/// The caller of `invite`: P-Asserted-Identity when it holds a number,
/// else From; `None` when neither names a user. A withheld number
/// (`sip:anonymous@anonymous.invalid`, RFC 3323, or a carrier's
/// `restricted`, `unavailable`, `private`, `unknown`) comes back as `""`:
/// the call is an anonymous caller, a customer of its own.
pub fn caller_of(invite: &Request) -> Option<Caller> {
    let header = |name: &str| {
        invite
            .headers
            .iter()
            .find(|header| header.name().eq_ignore_ascii_case(name))
            .map(|header| header.value().to_owned())
    };
    header("P-Asserted-Identity")
        .as_deref()
        .and_then(parse_identity)
        .filter(|caller| !is_withheld(&caller.number))
        .or_else(|| header("From").as_deref().and_then(parse_identity))
        .map(|mut caller| {
            if is_withheld(&caller.number) {
                caller.number.clear();
            }
            caller
        })
}

/// The user part carriers write for a number they do not pass on.
fn is_withheld(number: &str) -> bool {
    [
        "anonymous",
        "restricted",
        "unavailable",
        "private",
        "unknown",
    ]
    .iter()
    .any(|word| number.eq_ignore_ascii_case(word))
}

/// Parses one name-addr or addr-spec header value (the first of a
/// comma-separated list) into a caller.
pub fn parse_identity(value: &str) -> Option<Caller> {
    let entry = first_entry(value).trim();
    let (display, uri) = match entry.find('<') {
        Some(open) => {
            let close = entry[open..].find('>')? + open;
            (entry[..open].trim(), &entry[open + 1..close])
        }
        // An addr-spec: what follows `;` are header parameters (the tag).
        None => ("", entry.split(';').next().unwrap_or_default()),
    };
    let number = user_of(uri.trim())?;
    let display = unquote(display);
    let display = display.trim();
    Some(Caller {
        number,
        display_name: (!display.is_empty()).then(|| display.to_owned()),
    })
}

/// A display name without its quotes and with `\\x` read as `x`
/// (RFC 3261 quoted-pair); a token display name as it is.
fn unquote(display: &str) -> String {
    let Some(quoted) = display
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return display.to_owned();
    };
    let mut unquoted = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => unquoted.extend(chars.next()),
            ch => unquoted.push(ch),
        }
    }
    unquoted
}

/// The value up to the first comma outside quotes and angle brackets.
fn first_entry(value: &str) -> &str {
    let mut in_quotes = false;
    let mut in_angles = false;
    let mut escaped = false;
    for (index, ch) in value.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' if !in_angles => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angles = true,
            '>' if !in_quotes => in_angles = false,
            ',' if !in_quotes && !in_angles => return &value[..index],
            _ => {}
        }
    }
    value
}

/// The user of a `sip:`/`sips:` URI (before `@`, without password or
/// user parameters) or the number of a `tel:` URI.
fn user_of(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let user = if scheme.eq_ignore_ascii_case("tel") {
        rest.split([';', '?']).next()?
    } else if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let (userinfo, _host) = rest.split_once('@')?;
        userinfo.split([':', ';']).next()?
    } else {
        return None;
    };
    let user = user.trim();
    (!user.is_empty()).then(|| user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, expected: Option<(&str, Option<&str>)>) {
        let parsed = parse_identity(value);
        let expected = expected.map(|(number, display_name)| Caller {
            number: number.into(),
            display_name: display_name.map(Into::into),
        });
        assert_eq!(parsed, expected, "{value}");
    }

    #[test]
    fn identities() {
        check(
            "<sip:13800000001@10.0.0.1:5060>;tag=abc",
            Some(("13800000001", None)),
        );
        check(
            "\"Wang Fang\" <sip:+8613900000009@carrier.example;user=phone>",
            Some(("+8613900000009", Some("Wang Fang"))),
        );
        check(
            "Li Lei <sips:lilei@example.com>",
            Some(("lilei", Some("Li Lei"))),
        );
        check(
            "<tel:+8613800000002;phone-context=x>",
            Some(("+8613800000002", None)),
        );
        check("sip:alice:secret@host;tag=1", Some(("alice", None)));
        check(
            "\"A, B\" <sip:123@h>, <tel:+456>",
            Some(("123", Some("A, B"))),
        );
        check("\"Q \\\"x\\\"\" <sip:9@h>", Some(("9", Some("Q \"x\""))));
        check("<sip:10.0.0.1:5060>", None);
        check("<mailto:a@b>", None);
        check("<sip:@host>", None);
        check("garbage", None);
        check("<sip:1@h", None);
        check("", None);
    }

    fn invite(extra_headers: &str) -> Request {
        let text = format!(
            "INVITE sip:support@10.0.0.9 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\n\
             From: \"Front Desk\" <sip:13800000001@10.0.0.1>;tag=a\r\n\
             To: <sip:support@10.0.0.9>\r\n\
             Call-ID: caller-test\r\n\
             CSeq: 1 INVITE\r\n\
             {extra_headers}\
             Content-Length: 0\r\n\r\n"
        );
        Request::try_from(text.as_str()).expect("test request parses")
    }

    #[test]
    fn p_asserted_identity_wins_over_from() {
        let from_only = caller_of(&invite("")).unwrap();
        assert_eq!(from_only.number, "13800000001");
        assert_eq!(from_only.display_name.as_deref(), Some("Front Desk"));
        let asserted = caller_of(&invite(
            "P-Asserted-Identity: \"Wang Fang\" <sip:+8613900000009@carrier>\r\n",
        ))
        .unwrap();
        assert_eq!(asserted.number, "+8613900000009");
        assert_eq!(asserted.display_name.as_deref(), Some("Wang Fang"));
        // An asserted identity without a number falls back to From.
        let anonymous =
            caller_of(&invite("P-Asserted-Identity: <sip:carrier.example>\r\n")).unwrap();
        assert_eq!(anonymous.number, "13800000001");
        // So does a withheld one.
        let withheld = caller_of(&invite(
            "P-Asserted-Identity: <sip:anonymous@anonymous.invalid>\r\n",
        ))
        .unwrap();
        assert_eq!(withheld.number, "13800000001");
    }

    #[test]
    fn a_withheld_number_is_no_number() {
        let text = "INVITE sip:support@10.0.0.9 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\n\
             From: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=a\r\n\
             To: <sip:support@10.0.0.9>\r\n\
             Call-ID: caller-test\r\n\
             CSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n";
        let caller = caller_of(&Request::try_from(text).unwrap()).unwrap();
        assert_eq!(caller.number, "");
        assert_eq!(caller.display_name.as_deref(), Some("Anonymous"));
        let restricted = caller_of(&invite("P-Asserted-Identity: <sip:Restricted@carrier>\r\n"));
        assert_eq!(
            restricted.unwrap().number,
            "13800000001",
            "From is used then"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(value in ".*") {
            let _ = parse_identity(&value);
        }
    }
}
