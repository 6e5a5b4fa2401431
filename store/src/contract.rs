//! The contract test suite every [`Store`] backend passes.
//!
//! Each case is a `pub async fn` that takes a fresh, empty store and panics
//! when the backend breaks the contract. A backend runs all of them with
//! [`store_contract_tests!`](crate::store_contract_tests), given an async
//! expression that makes a fresh store (anything that derefs to a `Store`, so
//! a wrapper can keep a temporary directory alive):
//!
//! ```text
//! store::store_contract_tests!(fresh_store());
//! ```
//!
//! Compiled for this crate's tests and, for other crates, with its
//! `contract-tests` feature. The calling crate needs `tokio` with the
//! `macros` and `rt-multi-thread` features.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use super::{INTERACTION_TTL_MS, Interaction, Store, StoreError, WriteOp};
use engine::Millis;
use engine::agent::{Agent, Capacity, Role, SipCredentials};
use engine::channel::Channel;
use engine::customer::{Customer, Identity};
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId, SessionIdGen};
use engine::message::{Sender, StoredMessage};
use engine::session::{Session, SessionState, SessionTimes};

mod customers;
mod messages;
mod platform;
mod sessions;

pub use customers::*;
pub use messages::*;
pub use platform::*;
pub use sessions::*;

/// Expands to one `#[tokio::test]` per contract case; `$factory` is an
/// expression evaluated once per test whose `.await` gives a fresh store.
#[macro_export]
macro_rules! store_contract_tests {
    ($factory:expr) => {
        $crate::store_contract_cases!(store_contract_tests, $factory);
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $factory.await;
                $crate::contract::$case(&*fixture).await;
            }
        )*
    };
}

/// The one list of contract cases: calls `$crate::$callback!(@cases $args; case, …)`.
#[macro_export]
macro_rules! store_contract_cases {
    ($callback:ident, $($args:tt)*) => {
        $crate::$callback! { @cases $($args)*;
            empty_store_reads_nothing,
            customer_round_trip_with_identities,
            one_person_across_channels,
            identity_owned_by_another_fails_the_whole_batch,
            session_round_trip_with_every_field,
            open_sessions_exclude_closed_and_abandoned,
            messages_ascending_paged_and_chinese_intact,
            duplicate_seq_fails_the_batch_atomically,
            sessions_of_customer_newest_first,
            interactions_newest_first_and_expire,
            agents_and_groups_round_trip,
            large_batch_all_readable,
            concurrent_writes_all_land,
            bad_batch_among_concurrent_ones_fails_alone,
            tickets_round_trip_newest_first,
            duplicate_ticket_event_fails_the_batch,
            articles_and_templates_round_trip,
            summaries_round_trip,
            outbox_due_in_order,
            audit_log_newest_first_across_days,
            sessions_queued_in_order_paged_across_days,
            agent_log_in_order_and_activity_before,
        }
    };
}

/// One contract case as a plain function, for a runner of its own (the
/// ScyllaDB suite, which needs a server and runs only when one is named).
pub type CaseFn = for<'a> fn(&'a dyn Store) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Lists the cases for [`cases`].
#[doc(hidden)]
#[macro_export]
macro_rules! store_contract_case_list {
    (@cases ; $($case:ident),* $(,)?) => {
        vec![$(
            {
                fn run<'a>(
                    store: &'a dyn $crate::Store,
                ) -> ::std::pin::Pin<Box<dyn ::std::future::Future<Output = ()> + Send + 'a>> {
                    Box::pin($crate::contract::$case(store))
                }
                (stringify!($case), run as $crate::contract::CaseFn)
            }
        ),*]
    };
}

/// Every contract case by name, in the order `store_contract_tests!` runs them.
pub fn cases() -> Vec<(&'static str, CaseFn)> {
    crate::store_contract_cases!(store_contract_case_list,)
}

const T0: Millis = 1_696_154_400_000; // 2023-10-01T10:00:00Z
const SECOND: Millis = 1_000;
const DAY: Millis = 24 * 60 * 60 * SECOND;

fn identity(channel: Channel, external_id: &str) -> Identity {
    Identity {
        channel,
        external_id: external_id.to_owned(),
    }
}

fn session(id: u64, customer: &str, channel: Channel, created: Millis) -> Session {
    Session::new(SessionId(id), CustomerId::new(customer), channel, created)
}

fn message(session: u64, seq: u64, sender: Sender, body: &str) -> StoredMessage {
    StoredMessage {
        session_id: SessionId(session),
        seq,
        sender,
        body: body.to_owned(),
        client_message_id: Some(format!("c-{session}-{seq}")),
        channel: Channel::Wechat,
        at: T0 + seq as Millis * SECOND,
    }
}

async fn write(store: &dyn Store, batch: Vec<WriteOp>) {
    store.write(&batch).await.expect("write");
}

fn seqs(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

fn ids(sessions: &[Session]) -> Vec<u64> {
    sessions.iter().map(|s| s.id.0).collect()
}

/// Polls every future on the current task until all are done: concurrent
/// callers without needing `'static` tasks (the store is borrowed).
async fn join_all<T>(futures: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}
