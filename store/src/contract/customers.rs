//! Contract cases: customers, identities and the recent-interaction history.

use super::*;

/// Reads of things never written are empty, not errors; an empty batch is fine.
pub async fn empty_store_reads_nothing(store: &dyn Store) {
    let nobody = CustomerId::new("nobody");
    store.write(&[]).await.expect("empty batch");
    assert_eq!(store.get_customer(&nobody).await.unwrap(), None);
    assert_eq!(
        store
            .find_customer_by_identity(&Channel::Web, "v-1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_session(SessionId(1)).await.unwrap(), None);
    assert!(
        store
            .sessions_of_customer(&nobody, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.open_sessions().await.unwrap().is_empty());
    assert!(
        store
            .messages(SessionId(1), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .interactions(&nobody, T0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.purge_expired(T0).await.unwrap(), 0);
    assert!(store.list_agents().await.unwrap().is_empty());
    assert_eq!(store.get_agent(&AgentId::new("alice")).await.unwrap(), None);
    assert!(store.list_groups().await.unwrap().is_empty());
}

/// Every customer field comes back; a later put updates the profile and adds
/// identities without dropping the ones linked before.
pub async fn customer_round_trip_with_identities(store: &dyn Store) {
    let mut customer = Customer::new("c-42", "王小明");
    customer.tier = "vip".to_owned();
    customer.tags = vec!["complaint".to_owned(), "退款".to_owned()];
    customer.language = "en".to_owned();
    customer.last_agent = Some(AgentId::new("alice"));
    customer.created_at = T0;
    customer.identities = vec![
        identity(Channel::Web, "visitor-9"),
        identity(Channel::Wechat, "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"),
    ];
    customer.identities.sort();
    write(store, vec![WriteOp::PutCustomer(customer.clone())]).await;
    assert_eq!(
        store.get_customer(&customer.id).await.unwrap(),
        Some(customer.clone())
    );

    let mut updated = customer.clone();
    updated.tier = "standard".to_owned();
    updated.tags.clear();
    updated.last_agent = None;
    updated.identities = vec![identity(Channel::Phone, "+8613800000000")];
    write(store, vec![WriteOp::PutCustomer(updated.clone())]).await;

    let mut expected = updated;
    expected.identities = customer
        .identities
        .iter()
        .cloned()
        .chain([identity(Channel::Phone, "+8613800000000")])
        .collect();
    expected.identities.sort();
    assert_eq!(
        store.get_customer(&customer.id).await.unwrap(),
        Some(expected)
    );
}

/// One person reached over web, app, phone and WeChat is one customer; the
/// same external id on another channel is another identity.
pub async fn one_person_across_channels(store: &dyn Store) {
    let customer = Customer::new("c-1", "Li Lei");
    write(store, vec![WriteOp::PutCustomer(customer.clone())]).await;
    let identities = [
        identity(Channel::Web, "visitor-77"),
        identity(Channel::App, "device-abc"),
        identity(Channel::Phone, "+8613800000001"),
        identity(Channel::Wechat, "o6_wx_1"),
    ];
    for identity in &identities {
        write(
            store,
            vec![WriteOp::LinkIdentity {
                customer: customer.id.clone(),
                identity: identity.clone(),
            }],
        )
        .await;
    }
    // Linking again to the same owner is a no-op, not an error.
    write(
        store,
        vec![WriteOp::LinkIdentity {
            customer: customer.id.clone(),
            identity: identities[3].clone(),
        }],
    )
    .await;

    for identity in &identities {
        assert_eq!(
            store
                .find_customer_by_identity(&identity.channel, &identity.external_id)
                .await
                .unwrap(),
            Some(customer.id.clone()),
            "{identity:?}"
        );
    }
    assert_eq!(
        store
            .find_customer_by_identity(&Channel::Sms, "+8613800000001")
            .await
            .unwrap(),
        None
    );
    let mut expected = identities.to_vec();
    expected.sort();
    let stored = store.get_customer(&customer.id).await.unwrap().unwrap();
    assert_eq!(stored.identities, expected);
}

/// An identity that belongs to someone else fails the batch, and none of the
/// batch's other ops are written.
pub async fn identity_owned_by_another_fails_the_whole_batch(store: &dyn Store) {
    let wechat = identity(Channel::Wechat, "o6_taken");
    let mut alice = Customer::new("alice", "Alice");
    alice.identities = vec![wechat.clone()];
    write(store, vec![WriteOp::PutCustomer(alice)]).await;

    let bob = Customer::new("bob", "Bob");
    let bobs_session = session(7, "bob", Channel::Wechat, T0);
    let batch = vec![
        WriteOp::PutCustomer(bob.clone()),
        WriteOp::PutSession(bobs_session.clone()),
        WriteOp::AppendMessage(message(7, 1, Sender::Customer, "你好")),
        WriteOp::LinkIdentity {
            customer: bob.id.clone(),
            identity: wechat.clone(),
        },
        WriteOp::LinkIdentity {
            customer: bob.id.clone(),
            identity: identity(Channel::Web, "bob-web"),
        },
    ];
    let expected_error = StoreError::IdentityTaken {
        channel: Channel::Wechat,
        external_id: "o6_taken".to_owned(),
        owner: CustomerId::new("alice"),
    };
    assert_eq!(store.write(&batch).await, Err(expected_error.clone()));

    assert_eq!(store.get_customer(&bob.id).await.unwrap(), None);
    assert_eq!(store.get_session(bobs_session.id).await.unwrap(), None);
    assert!(
        store
            .messages(bobs_session.id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .find_customer_by_identity(&Channel::Web, "bob-web")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_customer_by_identity(&Channel::Wechat, "o6_taken")
            .await
            .unwrap(),
        Some(CustomerId::new("alice"))
    );

    // The identity listed inside a customer put is checked the same way.
    let mut bob_claiming = bob.clone();
    bob_claiming.identities = vec![wechat];
    assert_eq!(
        store.write(&[WriteOp::PutCustomer(bob_claiming)]).await,
        Err(expected_error)
    );
    assert_eq!(store.get_customer(&bob.id).await.unwrap(), None);
}

/// The recent history is newest first, hides what is older than the TTL at
/// `now`, and purging deletes the expired rows for good.
pub async fn interactions_newest_first_and_expire(store: &dyn Store) {
    let now = T0 + 100 * DAY;
    let customer = CustomerId::new("c-1");
    let interaction = |at: Millis, session_id: u64, channel: Channel| Interaction {
        customer_id: customer.clone(),
        at,
        session_id: SessionId(session_id),
        channel,
        summary: format!("咨询 {session_id}"),
    };
    let hour_ago = interaction(now - 3_600 * SECOND, 1, Channel::Wechat);
    let almost_month_ago = interaction(now - 29 * DAY, 2, Channel::Phone);
    let exactly_ttl_ago = interaction(now - INTERACTION_TTL_MS, 3, Channel::Web);
    let month_and_day_ago = interaction(now - 31 * DAY, 4, Channel::App);
    let someone_else = Interaction {
        customer_id: CustomerId::new("c-2"),
        ..hour_ago.clone()
    };
    write(
        store,
        [
            &month_and_day_ago,
            &hour_ago,
            &exactly_ttl_ago,
            &someone_else,
            &almost_month_ago,
        ]
        .into_iter()
        .cloned()
        .map(WriteOp::RecordInteraction)
        .collect(),
    )
    .await;

    assert_eq!(
        store.interactions(&customer, now, 10).await.unwrap(),
        vec![hour_ago.clone(), almost_month_ago.clone()]
    );
    assert_eq!(
        store.interactions(&customer, now, 1).await.unwrap(),
        vec![hour_ago.clone()]
    );
    // Two days earlier the older two had not expired yet.
    let two_days_earlier = now - 2 * DAY;
    assert_eq!(
        store
            .interactions(&customer, two_days_earlier, 10)
            .await
            .unwrap(),
        vec![
            hour_ago.clone(),
            almost_month_ago.clone(),
            exactly_ttl_ago,
            month_and_day_ago
        ]
    );

    assert_eq!(store.purge_expired(now).await.unwrap(), 2);
    assert_eq!(
        store
            .interactions(&customer, two_days_earlier, 10)
            .await
            .unwrap(),
        vec![hour_ago.clone(), almost_month_ago]
    );
    assert_eq!(
        store
            .interactions(&CustomerId::new("c-2"), now, 10)
            .await
            .unwrap(),
        vec![someone_else]
    );
    assert_eq!(store.purge_expired(now).await.unwrap(), 0);
}
