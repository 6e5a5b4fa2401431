//! The SIP endpoint spoken to over raw UDP and TCP by a small client in this
//! file: what sipp 3.6.1 cannot do (SHA-256 digest), the answers to odd
//! requests, the call cap, trunk credentials, shutdown, and the start of the
//! malformed-input table (issue 18, item 11).

mod sip_common;

use std::sync::Arc;
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256};
use sip_common::{
    AGENT, PASSWORD, RawClient, busy, config, eventually, header_values, options_request, start,
    status_of,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use voice::sip::TrunkConfig;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn md5_hex(text: &str) -> String {
    hex(&Md5::digest(text.as_bytes()))
}

/// `name="value"` or `name=value` from a challenge.
fn param<'a>(challenge: &'a str, name: &str) -> &'a str {
    let start = challenge
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {challenge}"))
        + name.len()
        + 1;
    let rest = &challenge[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"').unwrap()],
        None => rest.split([',', ' ']).next().unwrap(),
    }
}

fn register_request(
    client: &RawClient,
    cseq: u32,
    contact_expires: u32,
    authorization: Option<&str>,
) -> String {
    let local = client.local();
    let server = client.server;
    let authorization = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-reg-{cseq}\r\n\
         From: <sip:{AGENT}@{server}>;tag=raw-reg\r\n\
         To: <sip:{AGENT}@{server}>\r\n\
         Call-ID: raw-register@{local}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{AGENT}@{local}>;expires={contact_expires}\r\n\
         {authorization}\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn a_phone_registers_with_sha256_digest() {
    let (calls, _seen) = busy();
    let endpoint = start(config(), calls).await;
    let client = RawClient::new(endpoint.udp_addr()).await;

    client
        .send(register_request(&client, 1, 120, None).as_bytes())
        .await;
    let challenge_reply = client.recv_final().await;
    assert_eq!(status_of(&challenge_reply), 401, "{challenge_reply}");
    let challenges = header_values(&challenge_reply, "WWW-Authenticate");
    assert_eq!(challenges.len(), 2, "{challenge_reply}");
    assert!(
        challenges[0].contains("algorithm=MD5"),
        "MD5 first for old phones"
    );
    let sha = challenges
        .iter()
        .find(|c| c.contains("algorithm=SHA-256"))
        .expect("a SHA-256 challenge");
    let (realm, nonce) = (param(sha, "realm"), param(sha, "nonce"));
    assert_eq!(param(sha, "qop"), "auth");

    let uri = format!("sip:{}", endpoint.udp_addr());
    let ha1 = sha256_hex(&format!("{AGENT}:{realm}:{PASSWORD}"));
    let ha2 = sha256_hex(&format!("REGISTER:{uri}"));
    let response = sha256_hex(&format!("{ha1}:{nonce}:00000001:deadbeef:auth:{ha2}"));
    let authorization = format!(
        "Digest username=\"{AGENT}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"deadbeef\""
    );
    client
        .send(register_request(&client, 2, 120, Some(&authorization)).as_bytes())
        .await;
    let ok = client.recv_final().await;
    assert_eq!(status_of(&ok), 200, "{ok}");
    assert_eq!(
        header_values(&ok, "Contact"),
        vec![format!("<sip:{AGENT}@{}>;expires=120", client.local())]
    );
    assert!(endpoint.registrar().is_registered(AGENT));

    // The same answer with one hex digit changed is a wrong password: 401.
    let tampered = authorization.replace(&response, &format!("0{}", &response[1..]));
    let tampered = if tampered == authorization {
        authorization.replace(&response, &format!("1{}", &response[1..]))
    } else {
        tampered
    };
    client
        .send(register_request(&client, 3, 0, Some(&tampered)).as_bytes())
        .await;
    assert_eq!(status_of(&client.recv_final().await), 401);
    assert!(endpoint.registrar().is_registered(AGENT), "still bound");

    // expires=0 with good credentials removes the one binding.
    let response = sha256_hex(&format!("{ha1}:{nonce}:00000002:deadbeef:auth:{ha2}"));
    let unregister = format!(
        "Digest username=\"{AGENT}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=SHA-256, qop=auth, nc=00000002, cnonce=\"deadbeef\""
    );
    client
        .send(register_request(&client, 4, 0, Some(&unregister)).as_bytes())
        .await;
    assert_eq!(status_of(&client.recv_final().await), 200);
    assert!(!endpoint.registrar().is_registered(AGENT));
    endpoint.shutdown().await;
}

#[tokio::test]
async fn below_the_minimum_expiry_is_423_with_min_expires() {
    let (calls, _seen) = busy();
    let endpoint = start(config(), calls).await;
    let client = RawClient::new(endpoint.udp_addr()).await;
    client
        .send(register_request(&client, 1, 10, None).as_bytes())
        .await;
    let challenge = client.recv_final().await;
    let md5 = header_values(&challenge, "WWW-Authenticate")[0];
    let (realm, nonce) = (param(md5, "realm"), param(md5, "nonce"));
    let uri = format!("sip:{}", endpoint.udp_addr());
    let ha1 = md5_hex(&format!("{AGENT}:{realm}:{PASSWORD}"));
    let response = md5_hex(&format!(
        "{ha1}:{nonce}:{}",
        md5_hex(&format!("REGISTER:{uri}"))
    ));
    let authorization = format!(
        "Digest username=\"{AGENT}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\""
    );
    client
        .send(register_request(&client, 2, 10, Some(&authorization)).as_bytes())
        .await;
    let reply = client.recv_final().await;
    assert_eq!(status_of(&reply), 423, "{reply}");
    assert_eq!(header_values(&reply, "Min-Expires"), vec!["60"]);
    endpoint.shutdown().await;
}

fn request(method: &str, client: &RawClient, branch: &str, extra: &str) -> String {
    let (local, server) = (client.local(), client.server);
    format!(
        "{method} sip:support@{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{branch}\r\n\
         From: <sip:13800000001@{local}>;tag=from-{branch}\r\n\
         To: <sip:support@{server}>{extra}\r\n\
         Call-ID: call-{branch}@{local}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:13800000001@{local}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn loopback_trunk() -> TrunkConfig {
    TrunkConfig {
        name: "loopback".into(),
        allow: vec!["127.0.0.1".into()],
        username: String::new(),
        password: Default::default(),
    }
}

#[tokio::test]
async fn an_accepted_invite_gets_100_trying_and_reaches_the_handler() {
    let (calls, mut seen) = busy();
    let mut config = config();
    config.trunks.push(loopback_trunk());
    let endpoint = start(config, calls).await;
    let client = RawClient::new(endpoint.udp_addr()).await;
    client
        .send(request("INVITE", &client, "accepted", "").as_bytes())
        .await;
    let first = client.recv_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(status_of(&first), 100, "{first}");
    let busy_here = client.recv_final().await;
    assert_eq!(status_of(&busy_here), 486, "{busy_here}");
    let call = seen.recv().await.unwrap();
    assert_eq!(call.source, client.local());
    assert_eq!(&*call.trunk, "loopback");
    endpoint.shutdown().await;
}

#[tokio::test]
async fn calls_beyond_max_calls_get_503_and_a_freed_slot_is_reused() {
    let (held, mut calls) = mpsc::unbounded_channel();
    let mut config = config();
    config.max_calls = 1;
    config.trunks.push(loopback_trunk());
    let endpoint = start(config, Arc::new(sip_common::Hold { held })).await;
    let client = RawClient::new(endpoint.udp_addr()).await;

    client
        .send(request("INVITE", &client, "cap-1", "").as_bytes())
        .await;
    let first_call = calls.recv().await.unwrap();
    assert_eq!(
        status_of(&client.recv_within(Duration::from_secs(5)).await.unwrap()),
        100
    );

    client
        .send(request("INVITE", &client, "cap-2", "").as_bytes())
        .await;
    let refused = client.recv_final().await;
    assert_eq!(status_of(&refused), 503, "{refused}");
    assert!(
        header_values(&refused, "Retry-After").is_empty(),
        "the cap is not a rate limit"
    );

    // The caller gives up (CANCEL → 487): the slot is free again.
    let cancel = request("CANCEL", &client, "cap-1", "");
    client.send(cancel.as_bytes()).await;
    let mut statuses = vec![
        status_of(&client.recv_final().await),
        status_of(&client.recv_final().await),
    ];
    statuses.sort();
    assert_eq!(statuses, vec![200, 487]);
    drop(first_call);
    client
        .send(request("INVITE", &client, "cap-3", "").as_bytes())
        .await;
    let third = calls
        .recv()
        .await
        .expect("the freed slot takes the next call");
    assert_eq!(
        status_of(&client.recv_within(Duration::from_secs(5)).await.unwrap()),
        100
    );
    third
        .dialog
        .reject(Some(rsipstack::sip::StatusCode::Decline), None)
        .unwrap();
    assert_eq!(status_of(&client.recv_final().await), 603);
    endpoint.shutdown().await;
}

#[tokio::test]
async fn a_trunk_with_credentials_is_challenged_then_accepted() {
    let (calls, mut seen) = busy();
    let mut config = config();
    config.trunks.push(TrunkConfig {
        name: "pbx".into(),
        allow: Vec::new(),
        username: "pbx".into(),
        password: "pbx-secret".into(),
    });
    let endpoint = start(config, calls).await;
    let client = RawClient::new(endpoint.udp_addr()).await;
    client
        .send(request("INVITE", &client, "trunk-1", "").as_bytes())
        .await;
    let challenge = client.recv_final().await;
    assert_eq!(status_of(&challenge), 401, "{challenge}");
    let md5 = header_values(&challenge, "WWW-Authenticate")[0];
    let (realm, nonce) = (param(md5, "realm"), param(md5, "nonce"));
    let uri = format!("sip:support@{}", endpoint.udp_addr());
    let ha1 = md5_hex(&format!("pbx:{realm}:pbx-secret"));
    let ha2 = md5_hex(&format!("INVITE:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}"));
    let authorization = format!(
        "\r\nAuthorization: Digest username=\"pbx\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", qop=auth, nc=00000001, cnonce=\"abc\""
    );
    client
        .send(request("INVITE", &client, "trunk-2", &authorization).as_bytes())
        .await;
    assert_eq!(
        status_of(&client.recv_final().await),
        486,
        "the handler's answer"
    );
    assert_eq!(&*seen.recv().await.unwrap().trunk, "pbx");
    endpoint.shutdown().await;
}

#[tokio::test]
async fn requests_outside_any_dialog_get_481_or_405() {
    let (calls, _seen) = busy();
    let endpoint = start(config(), calls).await;
    let client = RawClient::new(endpoint.udp_addr()).await;
    let check = |method: &'static str, to_tag: &'static str, expected: u16| {
        let client = &client;
        async move {
            let branch = format!("{method}-{}", to_tag.len());
            client
                .send(request(method, client, &branch, to_tag).as_bytes())
                .await;
            let reply = client.recv_final().await;
            assert_eq!(status_of(&reply), expected, "{method} {to_tag}: {reply}");
            reply
        }
    };
    check("BYE", ";tag=gone", 481).await;
    check("INFO", ";tag=gone", 481).await;
    check("INVITE", ";tag=gone", 481).await;
    check("BYE", "", 481).await;
    check("CANCEL", "", 481).await;
    let reply = check("MESSAGE", "", 405).await;
    assert!(
        header_values(&reply, "Allow")[0].contains("REGISTER"),
        "{reply}"
    );
    check("SUBSCRIBE", "", 405).await;
    endpoint.shutdown().await;
}

#[tokio::test]
async fn tcp_listens_on_the_same_port() {
    let (calls, _seen) = busy();
    let endpoint = start(config(), calls).await;
    assert_eq!(endpoint.tcp_addr().port(), endpoint.udp_addr().port());
    let mut stream = tokio::net::TcpStream::connect(endpoint.tcp_addr())
        .await
        .unwrap();
    let local = stream.local_addr().unwrap();
    let options =
        options_request(local, endpoint.tcp_addr(), "tcp").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    stream.write_all(options.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let len = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer over TCP")
        .unwrap();
    let reply = String::from_utf8_lossy(&buf[..len]);
    assert_eq!(status_of(&reply), 200, "{reply}");
    endpoint.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_the_listeners_and_frees_the_port() {
    let (calls, _seen) = busy();
    let endpoint = start(config(), calls).await;
    let udp = endpoint.udp_addr();
    let client = RawClient::new(udp).await;
    assert_eq!(client.options("before").await, Some(200));
    endpoint.shutdown().await;
    assert_eq!(client.options("after").await, None, "nobody answers");
    assert!(
        eventually(Duration::from_secs(5), || std::net::UdpSocket::bind(udp)
            .is_ok())
        .await,
        "the UDP port is free again"
    );
    assert!(
        std::net::TcpListener::bind(udp).is_ok(),
        "the TCP port is free again"
    );
}

/// What the endpoint does with one malformed datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// rsipstack drops it without an answer (it does not parse, or lacks
    /// what a transaction needs).
    Dropped,
    /// This status comes back.
    Status(u16),
    /// The RFC 5626 keep-alive answer: a bare CRLF.
    Pong,
}

/// Each case is sent alone; then the endpoint must still answer OPTIONS.
/// The table documents rsipstack 0.7.14's behaviour as found: unparseable
/// input, unknown methods (its `Method` parser knows a fixed list) and
/// requests without Via, From, Call-ID or CSeq are dropped silently (no
/// 400); a datagram over its 8 KiB read buffer is cut short and dropped; a Content-Length that disagrees with the body is tolerated (the
/// body is cut to the shorter of the two, a non-number counts as 0);
/// `CRLF CRLF` gets the RFC 5626 keep-alive `CRLF`. A version other than
/// SIP/2.0 parses, and the endpoint answers it 505.
#[tokio::test]
async fn malformed_input_table() {
    let (calls, _seen) = busy();
    let endpoint = start(config(), calls).await;
    let client = RawClient::new(endpoint.udp_addr()).await;
    let (local, server) = (client.local(), endpoint.udp_addr());
    let options = |branch: &str| options_request(local, server, branch);
    let without = |branch: &str, header: &str| {
        options(branch)
            .lines()
            .filter(|line| !line.starts_with(header))
            .map(|line| format!("{line}\r\n"))
            .collect::<String>()
    };
    let with_body = |branch: &str, content_length: usize, body: &str| {
        options(branch).replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Type: text/plain\r\nContent-Length: {content_length}\r\n\r\n{body}"),
        )
    };
    let oversized = options("big").replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nX-Padding: {}\r\n", "a".repeat(9_000)),
    );
    let cases: Vec<(&str, Vec<u8>, Outcome)> = vec![
        ("empty datagram", Vec::new(), Outcome::Dropped),
        (
            "CRLF CRLF (keep-alive ping)",
            b"\r\n\r\n".to_vec(),
            Outcome::Pong,
        ),
        ("spaces only", b"   \r\n".to_vec(), Outcome::Dropped),
        (
            "not SIP at all",
            b"hello, world\r\n\r\n".to_vec(),
            Outcome::Dropped,
        ),
        (
            "binary junk",
            vec![0, 159, 146, 150, 255, 1, 2],
            Outcome::Dropped,
        ),
        (
            "bad start line: version",
            options("v3")
                .replace("SIP/2.0\r\n", "SIP/3.0\r\n")
                .into_bytes(),
            Outcome::Status(505),
        ),
        (
            "bad start line: no URI",
            options("nouri")
                .replacen(
                    &format!("OPTIONS sip:{server} SIP/2.0"),
                    "OPTIONS SIP/2.0",
                    1,
                )
                .into_bytes(),
            Outcome::Dropped,
        ),
        (
            "unknown method",
            options("frob")
                .replace("OPTIONS sip:", "FROB sip:")
                .replace("1 OPTIONS", "1 FROB")
                .into_bytes(),
            Outcome::Dropped,
        ),
        (
            "missing Call-ID",
            without("nocallid", "Call-ID").into_bytes(),
            Outcome::Dropped,
        ),
        (
            "missing CSeq",
            without("nocseq", "CSeq").into_bytes(),
            Outcome::Dropped,
        ),
        (
            "missing Via",
            without("novia", "Via").into_bytes(),
            Outcome::Dropped,
        ),
        (
            "missing From",
            without("nofrom", "From").into_bytes(),
            Outcome::Dropped,
        ),
        (
            "Content-Length larger than the body",
            with_body("cl-long", 500, "short").into_bytes(),
            Outcome::Status(200),
        ),
        (
            "Content-Length smaller than the body",
            with_body("cl-short", 2, "longer body").into_bytes(),
            Outcome::Status(200),
        ),
        (
            "Content-Length not a number",
            with_body("cl-nan", 0, "body")
                .replace("Content-Length: 0", "Content-Length: many")
                .into_bytes(),
            Outcome::Status(200),
        ),
        (
            "oversized (over the 8 KiB UDP buffer)",
            oversized.into_bytes(),
            Outcome::Dropped,
        ),
        (
            "CSeq method differs from the request's",
            options("cseq-mismatch")
                .replace("1 OPTIONS", "1 INVITE")
                .into_bytes(),
            Outcome::Status(200),
        ),
    ];
    let mut observed = Vec::new();
    for (idx, (name, datagram, _)) in cases.iter().enumerate() {
        client.send(datagram).await;
        let outcome = match client.recv_within(Duration::from_millis(300)).await {
            Some(reply) if reply.trim().is_empty() => Outcome::Pong,
            Some(reply) => Outcome::Status(status_of(&reply)),
            None => Outcome::Dropped,
        };
        assert_eq!(
            client.options(&format!("alive-{idx}")).await,
            Some(200),
            "the endpoint still answers after `{name}`"
        );
        observed.push((*name, outcome));
    }
    let expected: Vec<(&str, Outcome)> = cases
        .iter()
        .map(|(name, _, outcome)| (*name, *outcome))
        .collect();
    assert_eq!(observed, expected);
    endpoint.shutdown().await;
}
