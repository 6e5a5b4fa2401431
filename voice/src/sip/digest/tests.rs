use super::*;

/// RFC 7616 §3.9.1: Mufasa / "Circle of Life" in realm http-auth@example.org.
const RFC_USER: &str = "Mufasa";
const RFC_REALM: &str = "http-auth@example.org";
const RFC_PASSWORD: &str = "Circle of Life";
const RFC_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
const RFC_URI: &str = "/dir/index.html";

const NOW: u64 = 1_800_000_000;

fn auth() -> DigestAuth {
    DigestAuth::with_key(
        "switchboard",
        &[DigestAlgorithm::Md5, DigestAlgorithm::Sha256],
        [7; 32],
    )
}

#[test]
fn rfc_7616_example_responses() {
    let creds = credentials(RFC_USER, RFC_REALM, RFC_PASSWORD);
    let qop = Some(("00000001", RFC_CNONCE));
    let check = |algorithm: DigestAlgorithm, ha1: &str, expected: &str| {
        assert_eq!(
            expected_response(algorithm, ha1, "GET", RFC_URI, RFC_NONCE, qop),
            expected,
            "{algorithm:?}"
        );
    };
    check(
        DigestAlgorithm::Md5,
        &creds.ha1_md5,
        "8ca523f5e9506fed4657c9700eebdbec",
    );
    check(
        DigestAlgorithm::Sha256,
        &creds.ha1_sha256,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    );
}

#[test]
fn rfc_7616_example_header_parses() {
    let header = r#"Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
    let parsed = DigestAuthorization::parse(header).unwrap();
    assert_eq!(parsed.username, RFC_USER);
    assert_eq!(parsed.realm, RFC_REALM);
    assert_eq!(parsed.algorithm, DigestAlgorithm::Sha256);
    assert_eq!(parsed.nonce, RFC_NONCE);
    assert_eq!(parsed.uri, RFC_URI);
    assert_eq!(parsed.qop, Some(("00000001".into(), RFC_CNONCE.into())));
}

#[test]
fn rfc_4231_hmac_vectors() {
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex(&hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn challenges_follow_the_configured_order_and_mark_stale() {
    let challenges = auth().challenges(NOW, false);
    assert_eq!(challenges.len(), 2);
    assert!(challenges[0].contains("algorithm=MD5"), "{}", challenges[0]);
    assert!(
        challenges[1].contains("algorithm=SHA-256"),
        "{}",
        challenges[1]
    );
    for challenge in &challenges {
        assert!(challenge.starts_with("Digest realm=\"switchboard\", nonce=\""));
        assert!(challenge.contains("qop=\"auth\""));
        assert!(!challenge.contains("stale"));
    }
    let sha_first = DigestAuth::with_key("r", &[DigestAlgorithm::Sha256], [1; 32]);
    assert_eq!(sha_first.challenges(NOW, true).len(), 1);
    assert!(sha_first.challenges(NOW, true)[0].ends_with(", stale=true"));
}

/// A correct header as a phone would build it from our challenge.
fn answer(algorithm: DigestAlgorithm, password: &str, qop: bool, nonce: &str) -> String {
    let creds = credentials("agent1", "switchboard", password);
    let ha1 = match algorithm {
        DigestAlgorithm::Md5 => creds.ha1_md5,
        DigestAlgorithm::Sha256 => creds.ha1_sha256,
    };
    let uri = "sip:127.0.0.1:5060";
    let qop_params = qop.then_some(("00000001", "0a4f113b"));
    let response = expected_response(algorithm, &ha1, "REGISTER", uri, nonce, qop_params);
    let mut header = format!(
        "Digest username=\"agent1\", realm=\"switchboard\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
        algorithm.token()
    );
    if qop {
        header.push_str(", qop=auth, nc=00000001, cnonce=\"0a4f113b\"");
    }
    header
}

fn verify(header: &str, now: u64) -> Result<(), DigestError> {
    let stored = credentials("agent1", "switchboard", "secret");
    let parsed = DigestAuthorization::parse(header)?;
    auth().verify(
        &parsed,
        "agent1",
        "REGISTER",
        "sip:127.0.0.1:5060",
        &stored,
        now,
    )
}

#[test]
fn good_answers_pass_with_both_algorithms_with_and_without_qop() {
    let nonce = auth().nonce(NOW);
    for algorithm in [DigestAlgorithm::Md5, DigestAlgorithm::Sha256] {
        for qop in [true, false] {
            let header = answer(algorithm, "secret", qop, &nonce);
            assert_eq!(verify(&header, NOW + 10), Ok(()), "{header}");
        }
    }
}

#[test]
fn every_tampered_field_is_refused_with_its_reason() {
    let nonce = auth().nonce(NOW);
    let good = answer(DigestAlgorithm::Sha256, "secret", true, &nonce);
    let check = |header: String, now: u64, expected: DigestError| {
        assert_eq!(verify(&header, now), Err(expected), "{header}");
    };
    check(
        answer(DigestAlgorithm::Sha256, "wrong", true, &nonce),
        NOW,
        DigestError::ResponseMismatch,
    );
    check(
        answer(DigestAlgorithm::Md5, "wrong", false, &nonce),
        NOW,
        DigestError::ResponseMismatch,
    );
    check(
        good.replace("username=\"agent1\"", "username=\"agent2\""),
        NOW,
        DigestError::UsernameMismatch {
            got: "agent2".into(),
            expected: "agent1".into(),
        },
    );
    check(
        good.replace("realm=\"switchboard\"", "realm=\"other\""),
        NOW,
        DigestError::RealmMismatch("other".into()),
    );
    check(
        good.replace("uri=\"sip:127.0.0.1:5060\"", "uri=\"sip:10.0.0.1\""),
        NOW,
        DigestError::UriMismatch {
            got: "sip:10.0.0.1".into(),
            expected: "sip:127.0.0.1:5060".into(),
        },
    );
    check(
        good.replace("nc=00000001", "nc=00000002"),
        NOW,
        DigestError::ResponseMismatch,
    );
    let mut forged = nonce.clone();
    forged.replace_range(47.., if nonce.ends_with('0') { "1" } else { "0" });
    check(
        good.replace(&nonce, &forged),
        NOW,
        DigestError::NonceInvalid,
    );
    check(good.replace(&nonce, "abc"), NOW, DigestError::NonceInvalid);
    let other_process = DigestAuth::with_key("switchboard", &[], [8; 32]).nonce(NOW);
    check(
        good.replace(&nonce, &other_process),
        NOW,
        DigestError::NonceInvalid,
    );
    check(
        good.clone(),
        NOW + NONCE_LIFETIME_SECS + 1,
        DigestError::NonceExpired,
    );
    check(good.clone(), NOW - 60, DigestError::NonceInvalid);
    check(
        good.replace("algorithm=SHA-256", "algorithm=SHA-512-256"),
        NOW,
        DigestError::UnsupportedAlgorithm("SHA-512-256".into()),
    );
    check(
        good.replace("qop=auth", "qop=auth-int"),
        NOW,
        DigestError::UnsupportedQop("auth-int".into()),
    );
    check(
        good.replace(", cnonce=\"0a4f113b\"", ""),
        NOW,
        DigestError::Missing("cnonce"),
    );
    check(
        good.replace("Digest ", "Basic "),
        NOW,
        DigestError::NotDigest,
    );
    assert!(matches!(
        verify(
            &good.replace("realm=\"switchboard\"", "realm=\"unterminated"),
            NOW
        ),
        Err(DigestError::Malformed(_))
    ));
    assert!(DigestError::NonceExpired.is_stale());
}

#[test]
fn an_algorithm_not_configured_is_refused_even_with_the_right_password() {
    let md5_only = DigestAuth::with_key("switchboard", &[DigestAlgorithm::Md5], [7; 32]);
    let nonce = md5_only.nonce(NOW);
    let header = answer(DigestAlgorithm::Sha256, "secret", true, &nonce);
    let parsed = DigestAuthorization::parse(&header).unwrap();
    let stored = credentials("agent1", "switchboard", "secret");
    assert_eq!(
        md5_only.verify(
            &parsed,
            "agent1",
            "REGISTER",
            "sip:127.0.0.1:5060",
            &stored,
            NOW
        ),
        Err(DigestError::AlgorithmNotOffered("SHA-256"))
    );
}

#[test]
fn credentials_for_another_realm_are_refused() {
    let nonce = auth().nonce(NOW);
    let parsed =
        DigestAuthorization::parse(&answer(DigestAlgorithm::Md5, "secret", true, &nonce)).unwrap();
    let stored = credentials("agent1", "old-realm", "secret");
    assert_eq!(
        auth().verify(
            &parsed,
            "agent1",
            "REGISTER",
            "sip:127.0.0.1:5060",
            &stored,
            NOW
        ),
        Err(DigestError::CredentialsForOtherRealm("old-realm".into()))
    );
}

#[test]
fn a_digest_uri_spelled_differently_still_matches() {
    assert!(same_uri("sip:127.0.0.1:5060", "sip:127.0.0.1:5060"));
    assert!(same_uri("SIP:127.0.0.1:5060", "sip:127.0.0.1:5060"));
    assert!(!same_uri("sip:127.0.0.1:5061", "sip:127.0.0.1:5060"));
}

proptest::proptest! {
    #[test]
    fn parsing_any_header_never_panics(value in ".{0,200}") {
        let _ = DigestAuthorization::parse(&value); // only the absence of a panic matters
    }

    #[test]
    fn parsing_digest_like_headers_never_panics(
        params in proptest::collection::vec(("[a-z]{1,8}", "[\"a-z0-9=, \\\\]{0,12}"), 0..6)
    ) {
        let header = format!(
            "Digest {}",
            params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
        );
        let _ = DigestAuthorization::parse(&header); // only the absence of a panic matters
    }
}
