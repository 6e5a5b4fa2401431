//! Just enough SIP over UDP for a load generator (RFC 3261): messages as
//! text, the start line and the headers the phone scenarios read, SDP's
//! audio address, and digest authentication (RFC 2617, MD5 with
//! `qop=auth`). Not a product stack: no retransmission (loopback does not
//! lose datagrams; a reply that does not come is a counted timeout), no
//! TCP, no forking.

use std::net::{IpAddr, SocketAddr};

use md5::{Digest, Md5};

/// One SIP request or response.
#[derive(Debug, Clone)]
pub struct Message {
    /// `SIP/2.0 200 OK` or `INVITE sip:… SIP/2.0`.
    pub start_line: String,
    headers: Vec<(String, String)>,
    pub body: String,
}

/// A header's full name for its compact form (RFC 3261 §7.3.3).
fn full_name(name: &str) -> &str {
    match name {
        "i" | "I" => "Call-ID",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "v" | "V" => "Via",
        "m" | "M" => "Contact",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        other => other,
    }
}

impl Message {
    /// Parses one datagram; `None` when it is not a SIP message (a
    /// keep-alive CRLF, garbage).
    pub fn parse(datagram: &[u8]) -> Option<Message> {
        let text = std::str::from_utf8(datagram).ok()?;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.split("\r\n");
        let start_line = lines.next()?.trim().to_string();
        if !(start_line.starts_with("SIP/2.0 ") || start_line.ends_with(" SIP/2.0")) {
            return None;
        }
        let mut headers = Vec::new();
        for line in lines {
            // Folded continuation lines: part of the header before.
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    let value: &mut String = value;
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((full_name(name.trim()).to_string(), value.trim().to_string()));
        }
        Some(Message {
            start_line,
            headers,
            body: body.to_string(),
        })
    }

    /// A response's status code.
    pub fn status(&self) -> Option<u16> {
        let rest = self.start_line.strip_prefix("SIP/2.0 ")?;
        rest.split_whitespace().next()?.parse().ok()
    }

    /// A request's method.
    pub fn method(&self) -> Option<&str> {
        if self.status().is_some() {
            return None;
        }
        self.start_line.split_whitespace().next()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The method named in CSeq (`1 INVITE` → `INVITE`).
    pub fn cseq_method(&self) -> Option<&str> {
        self.header("CSeq")?.split_whitespace().nth(1)
    }

    /// The user part of the From URI (a caller's number).
    pub fn from_user(&self) -> Option<&str> {
        let uri = uri_in(self.header("From")?);
        let user = uri.strip_prefix("sip:")?.split('@').next()?;
        Some(user)
    }

    /// A response to this request: its Via, From, To (with `to_tag` added
    /// when the To has none), Call-ID and CSeq, then `extra` header lines
    /// and `body` (SDP when not empty).
    pub fn response(&self, status: &str, to_tag: &str, extra: &[String], body: &str) -> String {
        let mut out = format!("SIP/2.0 {status}\r\n");
        for via in self.headers("Via") {
            out.push_str(&format!("Via: {via}\r\n"));
        }
        for name in ["From", "To", "Call-ID", "CSeq"] {
            let Some(value) = self.header(name) else {
                continue;
            };
            if name == "To" && tag(value).is_none() {
                out.push_str(&format!("To: {value};tag={to_tag}\r\n"));
            } else {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        for line in extra {
            out.push_str(line);
            out.push_str("\r\n");
        }
        finish(&mut out, body);
        out
    }
}

/// Ends a message after its headers: Content-Type for a body, Content-Length, the body.
pub fn finish(out: &mut String, body: &str) {
    if !body.is_empty() {
        out.push_str("Content-Type: application/sdp\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
}

/// The URI in a name-addr (`"x" <sip:a@b>;tag=1` → `sip:a@b`), or the
/// addr-spec itself.
pub fn uri_in(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The `tag` parameter of a From or To value.
pub fn tag(value: &str) -> Option<&str> {
    let params = match value.find('>') {
        Some(close) => &value[close + 1..],
        None => value,
    };
    params
        .split(';')
        .filter_map(|param| param.trim().strip_prefix("tag="))
        .next()
}

/// Where an SDP body wants audio: `c=IN IP4 <ip>` and `m=audio <port>`.
pub fn sdp_audio(body: &str) -> Option<SocketAddr> {
    let mut ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    for line in body.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("c=IN IP4 ") {
            // Media-level c= overrides the session's; either will do here.
            ip = rest.trim().parse().ok().or(ip);
        } else if let Some(rest) = line.strip_prefix("m=audio ") {
            port = rest.split_whitespace().next()?.parse().ok();
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

/// An SDP offer or answer of PCMU and telephone-event on 127.0.0.1:`port`.
pub fn sdp(port: u16, version: u32) -> String {
    format!(
        "v=0\r\no=- {version} {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// A parameter of a `Digest …` challenge (`realm`, `nonce`, `qop` …).
pub fn digest_param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let params = challenge.trim().strip_prefix("Digest")?;
    params.split(',').find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"'))
    })
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The `Authorization` value answering an MD5 `challenge` for `method`
/// on `uri` (RFC 2617 with `qop=auth` when the challenge offers it);
/// `None` for a challenge that is not MD5.
pub fn digest_authorization(
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    challenge: &str,
    cnonce: &str,
) -> Option<String> {
    let algorithm = digest_param(challenge, "algorithm").unwrap_or("MD5");
    if !algorithm.eq_ignore_ascii_case("MD5") {
        return None;
    }
    let realm = digest_param(challenge, "realm")?;
    let nonce = digest_param(challenge, "nonce")?;
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let auth_qop = digest_param(challenge, "qop")
        .is_some_and(|qop| qop.split(',').any(|q| q.trim() == "auth"));
    Some(if auth_qop {
        let nc = "00000001";
        let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\""
        )
    } else {
        let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
        format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=MD5"
        )
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_datagram_parses_or_is_refused(datagram in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Some(message) = Message::parse(&datagram) {
                let _ = (message.status(), message.method(), message.cseq_method(), message.from_user());
                let _ = message.response("200 OK", "t", &[], "");
            }
            let text = String::from_utf8_lossy(&datagram);
            let _ = (sdp_audio(&text), uri_in(&text), tag(&text), digest_param(&text, "nonce"));
        }

        #[test]
        fn responses_round_trip(status in 100u16..700, call_id in "[a-z0-9-]{1,20}", body in "[a-z=0-9 ]{0,40}") {
            let request = format!(
                "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=f\r\n\
                 To: <sip:x>\r\nCall-ID: {call_id}\r\nCSeq: 3 OPTIONS\r\n\r\n"
            );
            let request = Message::parse(request.as_bytes()).unwrap();
            let text = request.response(&format!("{status} Whatever"), "t9", &[], &body);
            let response = Message::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(response.status(), Some(status));
            prop_assert_eq!(response.header("Call-ID"), Some(call_id.as_str()));
            prop_assert_eq!(response.cseq_method(), Some("OPTIONS"));
            prop_assert_eq!(response.body, body);
        }
    }

    const OK: &str = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5000;branch=z9hG4bK1\r\n\
        f: <sip:+8613800000001@127.0.0.1>;tag=a1\r\nTo: <sip:support@127.0.0.1>;tag=b2\r\n\
        i: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:sb@127.0.0.1:5060>\r\n\
        Content-Type: application/sdp\r\nContent-Length: 60\r\n\r\n\
        v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 20002 RTP/AVP 0 101\r\n";

    #[test]
    fn responses_parse_with_compact_headers() {
        let message = Message::parse(OK.as_bytes()).unwrap();
        assert_eq!(message.status(), Some(200));
        assert_eq!(message.method(), None);
        assert_eq!(message.header("call-id"), Some("c1"));
        assert_eq!(message.cseq_method(), Some("INVITE"));
        assert_eq!(message.from_user(), Some("+8613800000001"));
        assert_eq!(tag(message.header("To").unwrap()), Some("b2"));
        assert_eq!(
            uri_in(message.header("Contact").unwrap()),
            "sip:sb@127.0.0.1:5060"
        );
        assert_eq!(
            sdp_audio(&message.body),
            Some("127.0.0.1:20002".parse().unwrap())
        );
    }

    #[test]
    fn garbage_is_not_a_message() {
        for datagram in [&b"\r\n\r\n"[..], b"hello", b"\xff\xfe", b""] {
            assert!(Message::parse(datagram).is_none(), "{datagram:?}");
        }
    }

    #[test]
    fn a_response_echoes_the_request_and_adds_a_to_tag() {
        let request = Message::parse(
            b"BYE sip:phone@127.0.0.1:6000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n\
              From: <sip:sb@127.0.0.1>;tag=s1\r\nTo: <sip:phone@127.0.0.1>\r\nCall-ID: c9\r\nCSeq: 7 BYE\r\n\r\n",
        )
        .unwrap();
        assert_eq!(request.method(), Some("BYE"));
        let text = request.response("200 OK", "p1", &[], "");
        let response = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(response.status(), Some(200));
        assert_eq!(tag(response.header("To").unwrap()), Some("p1"));
        assert_eq!(response.header("CSeq"), Some("7 BYE"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
    }

    #[test]
    fn digest_matches_rfc_2617s_example() {
        // RFC 2617 §3.5, with the method and URI of its example.
        let challenge = "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
                         nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
        let authorization = digest_authorization(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            challenge,
            "0a4f113b",
        )
        .unwrap();
        assert!(
            authorization.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{authorization}"
        );
        let sha = "Digest realm=\"switchboard\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\"";
        assert!(digest_authorization("a", "b", "REGISTER", "sip:x", sha, "c").is_none());
    }
}
