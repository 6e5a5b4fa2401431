use std::collections::HashMap;

use rsipstack::sip::SipMessage;

use super::*;
use crate::sip::digest::{self, DigestAlgorithm, expected_response};

const SOURCE: &str = "127.0.0.1:5072";
const REQUEST_URI: &str = "sip:127.0.0.1:5060";

/// Agents and their SIP passwords; `broken` makes every lookup fail.
struct Passwords {
    agents: HashMap<String, SipCredentials>,
    broken: bool,
}

#[async_trait]
impl SipCredentialSource for Passwords {
    async fn sip_credentials(&self, agent_id: &str) -> Result<Option<SipCredentials>, String> {
        if self.broken {
            return Err("store unavailable".into());
        }
        Ok(self.agents.get(agent_id).cloned())
    }
}

fn auth() -> DigestAuth {
    DigestAuth::with_key(
        "switchboard",
        &[DigestAlgorithm::Md5, DigestAlgorithm::Sha256],
        [9; 32],
    )
}

fn registrar_with(broken: bool) -> Registrar {
    let agents = HashMap::from([(
        "agent1".to_string(),
        digest::credentials("agent1", "switchboard", "secret"),
    )]);
    Registrar::new(
        auth(),
        Arc::new(Passwords { agents, broken }),
        ExpiryLimits {
            min_secs: 60,
            default_secs: 3_600,
            max_secs: 7_200,
        },
    )
}

fn registrar() -> Registrar {
    registrar_with(false)
}

/// A REGISTER for `user` with `headers` (Contact, Expires …) and, when a
/// password is given, an MD5 Authorization answering a nonce issued now.
fn register(user: &str, password: Option<&str>, headers: &[&str]) -> Request {
    let mut text = format!(
        "REGISTER {REQUEST_URI} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bK-1\r\n\
         From: <sip:{user}@127.0.0.1>;tag=abc\r\n\
         To: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: reg-1@127.0.0.1\r\n\
         CSeq: 2 REGISTER\r\n\
         Max-Forwards: 70\r\n"
    );
    if let Some(password) = password {
        let nonce = auth().nonce(unix_secs());
        let ha1 = digest::credentials(user, "switchboard", password).ha1_md5;
        let response = expected_response(
            DigestAlgorithm::Md5,
            &ha1,
            "REGISTER",
            REQUEST_URI,
            &nonce,
            None,
        );
        text.push_str(&format!(
            "Authorization: Digest username=\"{user}\", realm=\"switchboard\", nonce=\"{nonce}\", uri=\"{REQUEST_URI}\", response=\"{response}\", algorithm=MD5\r\n"
        ));
    }
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    match SipMessage::try_from(text.as_str()).expect("test request parses") {
        SipMessage::Request(request) => request,
        SipMessage::Response(_) => unreachable!("a request was written"),
    }
}

async fn send(registrar: &Registrar, request: Request) -> RegistrarReply {
    registrar
        .handle_register(&request, SOURCE.parse().unwrap(), Transport::Udp)
        .await
}

fn header_values(reply: &RegistrarReply, name: &str) -> Vec<String> {
    reply
        .headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value().to_owned())
        .collect()
}

#[tokio::test]
async fn without_credentials_the_answer_is_a_challenge_per_algorithm_md5_first() {
    let reply = send(
        &registrar(),
        register("agent1", None, &["Contact: <sip:agent1@127.0.0.1:5072>"]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::Unauthorized);
    let challenges = header_values(&reply, "WWW-Authenticate");
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(challenges[0].contains("algorithm=MD5"));
    assert!(challenges[1].contains("algorithm=SHA-256"));
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_agent_get_the_same_challenge() {
    let registrar = registrar();
    let contact = ["Contact: <sip:agent1@127.0.0.1:5072>"];
    let wrong = send(&registrar, register("agent1", Some("guess"), &contact)).await;
    let unknown = send(&registrar, register("nobody", Some("guess"), &contact)).await;
    for reply in [&wrong, &unknown] {
        assert_eq!(reply.status, StatusCode::Unauthorized);
        assert_eq!(header_values(reply, "WWW-Authenticate").len(), 2);
    }
    assert!(!registrar.is_registered("agent1"));
}

#[tokio::test]
async fn a_failing_credential_source_is_a_server_error_not_a_challenge() {
    let reply = send(
        &registrar_with(true),
        register(
            "agent1",
            Some("secret"),
            &["Contact: <sip:agent1@127.0.0.1:5072>"],
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ServerInternalError);
}

#[tokio::test]
async fn a_stale_nonce_is_challenged_with_stale_true() {
    let request = register(
        "agent1",
        Some("secret"),
        &["Contact: <sip:agent1@127.0.0.1:5072>"],
    );
    let mut stale = request.clone();
    let old_nonce = auth().nonce(unix_secs() - 3_600);
    let ha1 = digest::credentials("agent1", "switchboard", "secret").ha1_md5;
    let response = expected_response(
        DigestAlgorithm::Md5,
        &ha1,
        "REGISTER",
        REQUEST_URI,
        &old_nonce,
        None,
    );
    stale
        .headers
        .retain(|h| !matches!(h, Header::Authorization(_)));
    stale.headers.push(Header::Authorization(rsipstack::sip::headers::Authorization::new(format!(
        "Digest username=\"agent1\", realm=\"switchboard\", nonce=\"{old_nonce}\", uri=\"{REQUEST_URI}\", response=\"{response}\""
    ))));
    let reply = send(&registrar(), stale).await;
    assert_eq!(reply.status, StatusCode::Unauthorized);
    assert!(header_values(&reply, "WWW-Authenticate")[0].contains("stale=true"));
}

#[tokio::test(start_paused = true)]
async fn register_refresh_expire_and_watch() {
    let registrar = registrar();
    let mut changes = registrar.subscribe();
    let expiry = tokio::spawn({
        let registrar = registrar.clone();
        let cancel = CancellationToken::new();
        async move { registrar.run_expiry(cancel).await }
    });

    let reply = send(
        &registrar,
        register(
            "agent1",
            Some("secret"),
            &["Contact: <sip:agent1@127.0.0.1:5072;transport=udp>;expires=300"],
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        header_values(&reply, "Contact"),
        vec!["<sip:agent1@127.0.0.1:5072;transport=udp>;expires=300".to_string()]
    );
    assert_eq!(
        changes.recv().await.unwrap(),
        PhoneState {
            agent_id: "agent1".into(),
            registered: true
        }
    );
    let binding = registrar.contact("agent1").unwrap();
    assert_eq!(
        binding.contact_text,
        "sip:agent1@127.0.0.1:5072;transport=udp"
    );
    assert_eq!(binding.contact.host_with_port.to_string(), "127.0.0.1:5072");
    assert_eq!(binding.source, SOURCE.parse().unwrap());
    assert_eq!(registrar.registered_agents(), vec!["agent1".to_string()]);

    // A refresh 200 s later restarts the clock: no change is announced.
    tokio::time::advance(Duration::from_secs(200)).await;
    let reply = send(
        &registrar,
        register(
            "agent1",
            Some("secret"),
            &[
                "Contact: <sip:agent1@127.0.0.1:5072;transport=udp>",
                "Expires: 300",
            ],
        ),
    )
    .await;
    assert_eq!(
        header_values(&reply, "Contact"),
        vec!["<sip:agent1@127.0.0.1:5072;transport=udp>;expires=300".to_string()]
    );
    tokio::time::advance(Duration::from_secs(299)).await;
    assert!(registrar.is_registered("agent1"));
    assert!(changes.try_recv().is_err(), "no change while registered");

    // Unrefreshed, it lapses and the watchers hear of it.
    let lapsed = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        lapsed,
        PhoneState {
            agent_id: "agent1".into(),
            registered: false
        }
    );
    assert!(!registrar.is_registered("agent1"));
    assert!(registrar.registered_agents().is_empty());
    expiry.abort();
}

#[tokio::test]
async fn expiry_limits_423_below_min_and_clamp_above_max() {
    let registrar = registrar();
    let reply = send(
        &registrar,
        register(
            "agent1",
            Some("secret"),
            &["Contact: <sip:agent1@127.0.0.1:5072>;expires=30"],
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::IntervalTooBrief);
    assert_eq!(header_values(&reply, "Min-Expires"), vec!["60".to_string()]);
    assert!(!registrar.is_registered("agent1"));

    let reply = send(
        &registrar,
        register(
            "agent1",
            Some("secret"),
            &["Contact: <sip:agent1@127.0.0.1:5072>", "Expires: 86400"],
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        header_values(&reply, "Contact"),
        vec!["<sip:agent1@127.0.0.1:5072>;expires=7200".to_string()]
    );

    let reply = send(
        &registrar,
        register(
            "agent1",
            Some("secret"),
            &["Contact: <sip:agent1@127.0.0.1:5073>"],
        ),
    )
    .await;
    let contacts = header_values(&reply, "Contact");
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    assert!(
        contacts.contains(&"<sip:agent1@127.0.0.1:5073>;expires=3600".to_string()),
        "the default expiry: {contacts:?}"
    );
}

#[tokio::test]
async fn unregister_one_then_all() {
    let registrar = registrar();
    let mut changes = registrar.subscribe();
    let both = [
        "Contact: <sip:agent1@127.0.0.1:5072>, \"Desk\" <sip:agent1@127.0.0.1:5073>",
        "Expires: 600",
    ];
    assert_eq!(
        send(&registrar, register("agent1", Some("secret"), &both))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        registrar.contact("agent1").unwrap().contact.to_string(),
        "sip:agent1@127.0.0.1:5073"
    );

    let reply = send(
        &registrar,
        register(
            "agent1",
            Some("secret"),
            &["Contact: <sip:agent1@127.0.0.1:5073>;expires=0"],
        ),
    )
    .await;
    assert_eq!(
        header_values(&reply, "Contact"),
        vec!["<sip:agent1@127.0.0.1:5072>;expires=600".to_string()]
    );
    assert!(registrar.is_registered("agent1"));

    // A query (no Contact) lists without changing.
    let reply = send(&registrar, register("agent1", Some("secret"), &[])).await;
    assert_eq!(header_values(&reply, "Contact").len(), 1);

    // `*` needs Expires: 0.
    let reply = send(
        &registrar,
        register("agent1", Some("secret"), &["Contact: *"]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BadRequest);
    let reply = send(
        &registrar,
        register("agent1", Some("secret"), &["Contact: *", "Expires: 0"]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(header_values(&reply, "Contact").is_empty());
    assert!(!registrar.is_registered("agent1"));
    assert!(changes.recv().await.unwrap().registered);
    assert!(!changes.recv().await.unwrap().registered);
}

#[tokio::test]
async fn malformed_registers_are_400() {
    let registrar = registrar();
    for headers in [
        &["Contact: <sip:agent1@127.0.0.1:5072"][..],
        &["Contact: <sip:agent1@127.0.0.1:5072>;expires=soon"],
        &["Contact: <sip:agent1@127.0.0.1:5072>", "Expires: never"],
        &["Contact: *, <sip:agent1@127.0.0.1:5072>", "Expires: 0"],
    ] {
        let reply = send(&registrar, register("agent1", Some("secret"), headers)).await;
        assert_eq!(reply.status, StatusCode::BadRequest, "{headers:?}");
    }
    let no_user = register("agent1", None, &[]);
    let mut no_user = no_user;
    no_user.headers.retain(|h| !matches!(h, Header::To(_)));
    no_user
        .headers
        .push(Header::To(rsipstack::sip::headers::To::new(
            "<sip:127.0.0.1>",
        )));
    assert_eq!(
        send(&registrar, no_user).await.status,
        StatusCode::BadRequest
    );
}

#[test]
fn contacts_parse_with_and_without_angle_brackets() {
    let check = |entry: &str, uri: &str, expires: Option<u32>| {
        let (parsed, text, parsed_expires) = parse_contact(entry).unwrap();
        assert_eq!(text, uri, "{entry}");
        assert_eq!(Uri::try_from(uri).unwrap(), parsed, "{entry}");
        assert_eq!(parsed_expires, expires, "{entry}");
    };
    check(
        "<sip:a@10.0.0.1:5062;transport=tcp>;expires=60",
        "sip:a@10.0.0.1:5062;transport=tcp",
        Some(60),
    );
    check("\"Agent, One\" <sip:a@10.0.0.1>", "sip:a@10.0.0.1", None);
    check(
        "sip:a@10.0.0.1:5062;expires=120",
        "sip:a@10.0.0.1:5062",
        Some(120),
    );
    check("sip:a@10.0.0.1", "sip:a@10.0.0.1", None);
    assert_eq!(
        split_top_level("\"A, B\" <sip:a@h;x=1,2>, sip:b@h"),
        vec!["\"A, B\" <sip:a@h;x=1,2>", " sip:b@h"]
    );
}

proptest::proptest! {
    #[test]
    fn parsing_any_contact_never_panics(entry in ".{0,80}") {
        let _ = parse_contact(&entry); // only the absence of a panic matters
        let _ = split_top_level(&entry);
    }
}
