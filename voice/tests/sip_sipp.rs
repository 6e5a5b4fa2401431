//! The SIP endpoint against the real `sipp` (Debian's sip-tester 3.6.1)
//! over loopback UDP: phones registering with MD5 digest, keep-alives, and
//! INVITEs refused by the trunk policy and the rate limit.

mod sip_common;

use std::time::Duration;

use sip_common::{AGENT, PASSWORD, busy, config, eventually, sipp, start};
use voice::sip::{PhoneState, TrunkConfig};

#[tokio::test]
async fn a_phone_registers_with_md5_digest() {
    let (calls, _seen) = busy();
    let endpoint = start(config(), calls).await;
    let mut changes = endpoint.registrar().subscribe();
    let run = sipp(
        "register.xml",
        endpoint.udp_addr(),
        &["-s", AGENT, "-au", AGENT, "-ap", PASSWORD],
    )
    .await;
    run.assert_success();
    let change = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("a phone state change")
        .unwrap();
    assert_eq!(
        change,
        PhoneState {
            agent_id: AGENT.into(),
            registered: true
        }
    );
    let binding = endpoint.registrar().contact(AGENT).expect("a binding");
    assert_eq!(binding.source.ip().to_string(), "127.0.0.1");
    assert_eq!(
        binding
            .contact
            .host_with_port
            .port
            .map(|port| port.value().to_owned()),
        Some(binding.source.port()),
        "sipp's Contact names the port it sent from"
    );
    endpoint.shutdown().await;
}

#[tokio::test]
async fn a_wrong_password_stays_401() {
    let (calls, _seen) = busy();
    let endpoint = start(config(), calls).await;
    let run = sipp(
        "register_wrong_password.xml",
        endpoint.udp_addr(),
        &["-s", AGENT, "-au", AGENT, "-ap", "not-the-password"],
    )
    .await;
    run.assert_success();
    assert!(!endpoint.registrar().is_registered(AGENT));
    endpoint.shutdown().await;
}

#[tokio::test]
async fn an_unknown_user_stays_401_like_a_wrong_password() {
    let (calls, _seen) = busy();
    let endpoint = start(config(), calls).await;
    let run = sipp(
        "register_wrong_password.xml",
        endpoint.udp_addr(),
        &["-s", "nobody", "-au", "nobody", "-ap", PASSWORD],
    )
    .await;
    run.assert_success();
    assert!(endpoint.registrar().registered_agents().is_empty());
    endpoint.shutdown().await;
}

#[tokio::test]
async fn a_phone_unregisters_all_its_contacts() {
    let (calls, _seen) = busy();
    let endpoint = start(config(), calls).await;
    let mut changes = endpoint.registrar().subscribe();
    let run = sipp(
        "unregister.xml",
        endpoint.udp_addr(),
        &["-s", AGENT, "-au", AGENT, "-ap", PASSWORD],
    )
    .await;
    run.assert_success();
    let states: Vec<bool> = [changes.recv().await.unwrap(), changes.recv().await.unwrap()]
        .iter()
        .map(|change| change.registered)
        .collect();
    assert_eq!(states, vec![true, false]);
    assert!(!endpoint.registrar().is_registered(AGENT));
    endpoint.shutdown().await;
}

#[tokio::test]
async fn options_is_answered_200_with_allow() {
    let (calls, _seen) = busy();
    let endpoint = start(config(), calls).await;
    sipp("options.xml", endpoint.udp_addr(), &[])
        .await
        .assert_success();
    endpoint.shutdown().await;
}

#[tokio::test]
async fn an_invite_from_an_address_on_no_trunk_is_403() {
    let (calls, mut seen) = busy();
    let mut config = config();
    config.trunks.push(TrunkConfig {
        name: "carrier".into(),
        allow: vec!["192.0.2.0/24".into()],
        username: String::new(),
        password: Default::default(),
    });
    let endpoint = start(config, calls).await;
    sipp("invite_forbidden.xml", endpoint.udp_addr(), &[])
        .await
        .assert_success();
    assert!(seen.try_recv().is_err(), "no call reached the handler");
    endpoint.shutdown().await;
}

#[tokio::test]
async fn invites_above_the_source_rate_get_503_with_retry_after() {
    let (calls, mut seen) = busy();
    let mut config = config();
    config.invite_rate_per_sec = 1;
    config.invite_rate_burst = 1;
    config.trunks.push(TrunkConfig {
        name: "loopback".into(),
        allow: vec!["127.0.0.0/8".into()],
        username: String::new(),
        password: Default::default(),
    });
    let endpoint = start(config, calls).await;
    let run = sipp("invite_rate_limited.xml", endpoint.udp_addr(), &[]).await;
    run.assert_success();
    let call = seen
        .try_recv()
        .expect("the first INVITE reached the handler");
    assert_eq!(&*call.trunk, "loopback");
    assert!(seen.try_recv().is_err(), "the second did not");
    drop(call);
    assert!(
        eventually(Duration::from_secs(5), || endpoint
            .dialogs()
            .layer()
            .is_empty())
        .await,
        "the rejected call's dialog is removed"
    );
    endpoint.shutdown().await;
}
