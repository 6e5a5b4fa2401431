//! Actor references held where they are used, so that a message to an
//! agent, a group or a customer's open session is one cast, not a hop
//! through the Directory.
//!
//! Agents and groups live as long as the system: each registers itself in
//! [`ActorRefs`] when it (re)starts, and a restart replaces the reference.
//! Sessions come and go (passivation, ends), so the only session references
//! kept outside the Directory are those of [`OpenSessionRefs`], which the
//! session actors themselves keep true.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, RwLock};

use engine::ids::CustomerId;
use ractor::{ActorId, ActorRef, ActorStatus};
use tracing::warn;

use crate::session::SessionMessage;

/// The actors of one kind (agents, groups) by id. Read on every cast,
/// written only when an actor (re)starts.
pub struct ActorRefs<K, M> {
    /// What the actors are, for logs.
    kind: &'static str,
    refs: RwLock<HashMap<K, ActorRef<M>>>,
}

impl<K: Eq + Hash + Display, M: ractor::Message> ActorRefs<K, M> {
    /// No actors yet; `kind` names them in logs.
    pub fn new(kind: &'static str) -> ActorRefs<K, M> {
        ActorRefs {
            kind,
            refs: RwLock::new(HashMap::new()),
        }
    }

    /// The actor of `id` (re)started: messages go to it from now on.
    pub fn register(&self, id: K, actor: ActorRef<M>) {
        self.refs
            .write()
            .expect("no panic while holding the lock")
            .insert(id, actor);
    }

    /// The actor of `id` stopped for good here (it runs on another node
    /// now): forgets it, unless a newer actor registered since.
    pub fn unregister(&self, id: &K, actor: ActorId) {
        let mut refs = self.refs.write().expect("no panic while holding the lock");
        if refs.get(id).is_some_and(|held| held.get_id() == actor) {
            refs.remove(id);
        }
    }

    /// The actor of `id`, if there is one; it may be stopped, while its
    /// supervisor restarts it.
    pub fn get(&self, id: &K) -> Option<ActorRef<M>> {
        self.refs
            .read()
            .expect("no panic while holding the lock")
            .get(id)
            .cloned()
    }

    /// Casts `message` to the actor of `id`.
    pub fn tell(&self, id: &K, message: M) {
        match self.get(id) {
            // A stopped agent or group is being restarted: an agent reports
            // to its groups again and a group collects its queue again on
            // start, so what it missed is made good.
            Some(actor) => drop(actor.cast(message)),
            None => warn!(kind = self.kind, id = %id, "message for an unknown actor dropped"),
        }
    }
}

/// Whether `actor` counts as a session's live actor: from its spawn on, since
/// an actor stays `Starting` until its `post_start` has run, after `spawn`
/// returned. Starting another then would give the session a second `seq`
/// writer (or, before its first write is durable, fail: the store has no
/// such session).
pub fn is_live<M: ractor::Message>(actor: &ActorRef<M>) -> bool {
    matches!(
        actor.get_status(),
        ActorStatus::Starting | ActorStatus::Running | ActorStatus::Upgrading
    )
}

/// How many locks the open-session references are spread over.
const N_SHARDS: usize = 16;

/// The actor of each customer's open session, as its session actor last
/// said, so that the customer's next message is cast straight to it.
///
/// A session actor adds itself when it takes a customer message and removes
/// itself before it tells anyone that the session ended (and when it
/// passivates), so an entry never names an actor whose session ended:
/// a message sent after a customer heard of the end opens a new session.
/// An entry whose actor stopped otherwise (failed) is not used, and the
/// caller asks the Directory.
pub struct OpenSessionRefs {
    shards: Vec<Mutex<HashMap<CustomerId, ActorRef<SessionMessage>>>>,
}

impl Default for OpenSessionRefs {
    fn default() -> Self {
        OpenSessionRefs {
            shards: (0..N_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl OpenSessionRefs {
    fn shard(
        &self,
        customer: &CustomerId,
    ) -> &Mutex<HashMap<CustomerId, ActorRef<SessionMessage>>> {
        let mut hasher = DefaultHasher::new();
        customer.hash(&mut hasher);
        &self.shards[hasher.finish() as usize % N_SHARDS]
    }

    /// The actor of `customer`'s open session, if it is known and has not stopped.
    pub fn get(&self, customer: &CustomerId) -> Option<ActorRef<SessionMessage>> {
        let shard = self
            .shard(customer)
            .lock()
            .expect("no panic while holding the lock");
        let actor = shard.get(customer)?;
        is_live(actor).then(|| actor.clone())
    }

    /// `actor` runs `customer`'s open session.
    pub fn insert(&self, customer: CustomerId, actor: ActorRef<SessionMessage>) {
        self.shard(&customer)
            .lock()
            .expect("no panic while holding the lock")
            .insert(customer, actor);
    }

    /// Forgets `customer`'s entry if it names `actor`, not a newer session's.
    pub fn remove(&self, customer: &CustomerId, actor: ActorId) {
        let mut shard = self
            .shard(customer)
            .lock()
            .expect("no panic while holding the lock");
        if shard
            .get(customer)
            .is_some_and(|held| held.get_id() == actor)
        {
            shard.remove(customer);
        }
    }

    /// How many customers have an entry.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().expect("no panic while holding the lock").len())
            .sum()
    }

    /// No customer has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
