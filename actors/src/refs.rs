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
use std::time::{Duration, Instant};

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
    /// Messages for actors not registered yet, by id, since when: in a
    /// cluster an actor placed on this node a moment ago is still
    /// starting when the first messages for it arrive. Each goes to the
    /// actor when it registers, unless [`HOLD_FOR`] passed since it came.
    held: Mutex<HashMap<K, Vec<(Instant, M)>>>,
}

/// How long a message waits for its actor to register.
pub const HOLD_FOR: Duration = Duration::from_secs(2);
/// Messages held for one actor at most; later ones are dropped.
const HELD_PER_ACTOR: usize = 256;
/// Actors messages are held for at most.
const HELD_ACTORS: usize = 1_024;

impl<K: Eq + Hash + Display + Clone, M: ractor::Message> ActorRefs<K, M> {
    /// No actors yet; `kind` names them in logs.
    pub fn new(kind: &'static str) -> ActorRefs<K, M> {
        ActorRefs {
            kind,
            refs: RwLock::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// The actor of `id` (re)started: messages go to it from now on, after
    /// those held for it.
    pub fn register(&self, id: K, actor: ActorRef<M>) {
        let mut refs = self.refs.write().expect("no panic while holding the lock");
        let held = self
            .held
            .lock()
            .expect("no panic while holding the lock")
            .remove(&id);
        let mut n_late = 0;
        for (since, message) in held.unwrap_or_default() {
            if since.elapsed() < HOLD_FOR {
                // A stopped actor is being restarted; see `tell`.
                let _ = actor.cast(message);
            } else {
                n_late += 1;
            }
        }
        if n_late > 0 {
            warn!(kind = self.kind, id = %id, n = n_late, "messages for an actor that did not start here in time dropped");
        }
        refs.insert(id, actor);
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
            None => self.hold(id, message),
        }
    }

    /// Keeps `message` for the actor of `id` until it registers (at most
    /// [`HOLD_FOR`]); what is held longer, or beyond the limits, is dropped
    /// with a warning.
    fn hold(&self, id: &K, message: M) {
        // Under the refs lock: a register in between would miss it.
        let refs = self.refs.read().expect("no panic while holding the lock");
        if let Some(actor) = refs.get(id) {
            let _ = actor.cast(message); // registered meanwhile; see `tell`
            return;
        }
        let mut held = self.held.lock().expect("no panic while holding the lock");
        if held.len() >= HELD_ACTORS && !held.contains_key(id) {
            let before = held.len();
            for messages in held.values_mut() {
                messages.retain(|(since, _)| since.elapsed() < HOLD_FOR);
            }
            held.retain(|_, messages| !messages.is_empty());
            if before > held.len() {
                warn!(
                    kind = self.kind,
                    actors = before - held.len(),
                    "messages for actors that never started here dropped"
                );
            }
        }
        if held.len() >= HELD_ACTORS && !held.contains_key(id) {
            warn!(kind = self.kind, id = %id, "message for an actor not running here dropped");
            return;
        }
        let messages = held.entry(id.clone()).or_default();
        let before = messages.len();
        messages.retain(|(since, _)| since.elapsed() < HOLD_FOR);
        if messages.len() < before {
            warn!(kind = self.kind, id = %id, n = before - messages.len(), "messages for an actor that did not start here in time dropped");
        }
        if messages.len() >= HELD_PER_ACTOR {
            warn!(kind = self.kind, id = %id, "message for an actor not running here dropped");
            return;
        }
        messages.push((Instant::now(), message));
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

#[cfg(test)]
mod tests {
    use ractor::{Actor, ActorProcessingErr};
    use ractor_cluster_derive::RactorMessage;
    use tokio::sync::mpsc;

    use super::*;

    #[derive(RactorMessage)]
    struct Note(u32);

    /// Passes every note it gets on to the test.
    struct Collector;

    impl Actor for Collector {
        type Msg = Note;
        type State = mpsc::UnboundedSender<u32>;
        type Arguments = mpsc::UnboundedSender<u32>;

        async fn pre_start(
            &self,
            _me: ActorRef<Note>,
            out: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(out)
        }

        async fn handle(
            &self,
            _me: ActorRef<Note>,
            Note(n): Note,
            out: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            let _ = out.send(n);
            Ok(())
        }
    }

    #[tokio::test]
    async fn messages_for_an_actor_that_registers_later_reach_it_first_and_in_order() {
        let refs: ActorRefs<String, Note> = ActorRefs::new("test");
        let id = "a".to_string();
        refs.tell(&id, Note(1));
        refs.tell(&id, Note(2));
        let (out, mut got) = mpsc::unbounded_channel();
        let (actor, handle) = Actor::spawn(None, Collector, out).await.unwrap();
        refs.register(id.clone(), actor.clone());
        refs.tell(&id, Note(3));
        for expected in 1..=3 {
            assert_eq!(got.recv().await, Some(expected));
        }
        // Nothing is held for another id beyond its limit.
        let other = "b".to_string();
        for n in 0..(HELD_PER_ACTOR as u32 + 10) {
            refs.tell(&other, Note(n));
        }
        assert_eq!(refs.held.lock().unwrap()[&other].len(), HELD_PER_ACTOR);
        actor.stop(None);
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn messages_held_too_long_are_dropped() {
        let refs: ActorRefs<String, Note> = ActorRefs::new("test");
        let id = "late".to_string();
        refs.tell(&id, Note(1));
        // The hold is measured in real time.
        std::thread::sleep(HOLD_FOR + Duration::from_millis(50));
        let (out, mut got) = mpsc::unbounded_channel();
        let (actor, handle) = Actor::spawn(None, Collector, out).await.unwrap();
        refs.register(id.clone(), actor.clone());
        refs.tell(&id, Note(2));
        assert_eq!(got.recv().await, Some(2));
        actor.stop(None);
        handle.await.unwrap();
    }
}
