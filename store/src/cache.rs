//! [`CachedStore`]: any [`Store`] with a bounded in-process cache of hot
//! customer profiles and their recent history, the two reads behind every
//! 360° view and every routed session.
//!
//! Every write goes through the wrapper, which drops the entries of the
//! customers it touches once the write is durable. A read that raced with
//! such a write does not put its (possibly older) answer into the cache: each
//! of 64 shards counts invalidations, and a read inserts only if its shard's
//! count did not move while it read.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{INTERACTION_TTL_MS, Interaction, Store, StoreError, WriteOp};
use engine::Millis;
use engine::agent::Agent;
use engine::assist::ReplyTemplate;
use engine::channel::Channel;
use engine::customer::Customer;
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, SessionId, TicketId};
use engine::kb::Article;
use engine::message::StoredMessage;
use engine::outbox::OutboxEntry;
use engine::session::Session;
use engine::sla::report::AgentLogEntry;
use engine::summary::SessionSummary;
use engine::ticket::{Ticket, TicketEvent};

/// Interactions kept per cached customer: the newest this many that had not
/// expired when read. A read asking for more goes to the store.
pub const CACHED_INTERACTIONS: usize = 100;
const N_SHARDS: usize = 64;

/// Hit and miss counts since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: AtomicU64,
    /// Reads that went to the store.
    pub misses: AtomicU64,
    /// Entries dropped to stay within capacity.
    pub evictions: AtomicU64,
    /// Entries dropped because a write changed them.
    pub invalidations: AtomicU64,
}

#[derive(Clone)]
struct Entry {
    /// `None` until read once; `Some(None)` caches "no such customer".
    profile: Option<Option<Customer>>,
    /// When they were read, and the newest `CACHED_INTERACTIONS` that had
    /// not expired then. Good for any later `now` (rows only expire).
    interactions: Option<(Millis, Vec<Interaction>)>,
    last_used: u64,
}

/// Least recently used entries go first when the cache is full.
struct Lru {
    entries: HashMap<CustomerId, Entry>,
    by_use: BTreeMap<u64, CustomerId>,
    tick: u64,
}

/// Drops the entries of customers in the caches of the other processes
/// over the same store (the other nodes of a cluster).
pub trait PeerCaches: Send + Sync + 'static {
    /// Returns once every other process dropped `customers`, or gave up on
    /// one that does not answer (it is about to leave the cluster).
    fn forget(
        &self,
        customers: Vec<CustomerId>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// A store with a customer cache in front of it.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    capacity: usize,
    lru: Mutex<Lru>,
    epochs: Vec<AtomicU64>,
    stats: CacheStats,
    /// In a cluster: the other nodes' caches, emptied of what a write
    /// changed before the write returns.
    peers: std::sync::OnceLock<Arc<dyn PeerCaches>>,
}

impl CachedStore {
    /// Wraps `inner`, caching at most `capacity` customers (0 turns the cache off).
    pub fn new(inner: Arc<dyn Store>, capacity: usize) -> Self {
        CachedStore {
            inner,
            capacity,
            lru: Mutex::new(Lru {
                entries: HashMap::new(),
                by_use: BTreeMap::new(),
                tick: 0,
            }),
            epochs: (0..N_SHARDS).map(|_| AtomicU64::new(0)).collect(),
            stats: CacheStats::default(),
            peers: std::sync::OnceLock::new(),
        }
    }

    /// From now on a write that changes customers returns only once
    /// `peers` dropped them too, so no node serves a stale profile after
    /// the write was acknowledged (set once, when the node joins a cluster).
    pub fn share_with(&self, peers: Arc<dyn PeerCaches>) {
        // Set once: a node joins one cluster.
        let _ = self.peers.set(peers);
    }

    /// Drops `customers` here and, in a cluster, on every other node.
    async fn invalidate_everywhere(&self, customers: Vec<CustomerId>) {
        self.invalidate(&customers);
        if let Some(peers) = self.peers.get()
            && !customers.is_empty()
        {
            peers.forget(customers).await;
        }
    }

    /// Hits, misses, evictions and invalidations so far.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Customers cached now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn epoch(&self, customer: &CustomerId) -> &AtomicU64 {
        let mut hasher = DefaultHasher::new();
        customer.hash(&mut hasher);
        &self.epochs[hasher.finish() as usize % N_SHARDS]
    }

    /// Reads through the cache: `cached` picks the answer out of an entry.
    fn lookup<T>(
        &self,
        customer: &CustomerId,
        cached: impl FnOnce(&Entry) -> Option<T>,
    ) -> Option<T> {
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        let Lru {
            entries, by_use, ..
        } = &mut *lru;
        let entry = entries.get_mut(customer)?;
        let answer = cached(entry)?;
        by_use.remove(&entry.last_used);
        by_use.insert(tick, customer.clone());
        entry.last_used = tick;
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(answer)
    }

    /// Stores what a read found, unless a write to the shard came in between.
    fn fill(&self, customer: &CustomerId, epoch_before: u64, update: impl FnOnce(&mut Entry)) {
        if self.capacity == 0 {
            return;
        }
        let mut lru = self.lock();
        if self.epoch(customer).load(Ordering::Acquire) != epoch_before {
            return;
        }
        lru.tick += 1;
        let tick = lru.tick;
        let Lru {
            entries, by_use, ..
        } = &mut *lru;
        let entry = entries.entry(customer.clone()).or_insert_with(|| Entry {
            profile: None,
            interactions: None,
            last_used: tick,
        });
        by_use.remove(&entry.last_used);
        entry.last_used = tick;
        by_use.insert(tick, customer.clone());
        update(entry);
        while entries.len() > self.capacity {
            let Some((_, oldest)) = by_use.pop_first() else {
                break;
            };
            entries.remove(&oldest);
            self.stats.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn invalidate(&self, customers: &[CustomerId]) {
        if customers.is_empty() {
            return;
        }
        let mut lru = self.lock();
        for customer in customers {
            self.epoch(customer).fetch_add(1, Ordering::AcqRel);
            if let Some(entry) = lru.entries.remove(customer) {
                lru.by_use.remove(&entry.last_used);
                self.stats.invalidations.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The customers whose cached profile or history `batch` changes.
fn touched(batch: &[WriteOp]) -> Vec<CustomerId> {
    let mut customers: Vec<CustomerId> = batch
        .iter()
        .filter_map(|op| match op {
            WriteOp::PutCustomer(customer) => Some(customer.id.clone()),
            WriteOp::LinkIdentity { customer, .. } => Some(customer.clone()),
            WriteOp::RecordInteraction(interaction) => Some(interaction.customer_id.clone()),
            _ => None,
        })
        .collect();
    customers.sort();
    customers.dedup();
    customers
}

#[async_trait]
impl Store for CachedStore {
    async fn write(&self, batch: &[WriteOp]) -> Result<(), StoreError> {
        let customers = touched(batch);
        let result = self.inner.write(batch).await;
        // Also on failure: a backend error may leave the outcome unknown.
        self.invalidate_everywhere(customers).await;
        result
    }

    async fn write_owned(&self, batch: Vec<WriteOp>) -> Result<(), StoreError> {
        let customers = touched(&batch);
        let result = self.inner.write_owned(batch).await;
        self.invalidate_everywhere(customers).await;
        result
    }

    fn forget_cached(&self, customers: &[CustomerId]) {
        self.invalidate(customers);
    }

    async fn get_customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        if let Some(profile) = self.lookup(id, |entry| entry.profile.clone()) {
            return Ok(profile);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let epoch = self.epoch(id).load(Ordering::Acquire);
        let profile = self.inner.get_customer(id).await?;
        self.fill(id, epoch, |entry| entry.profile = Some(profile.clone()));
        Ok(profile)
    }

    async fn interactions(
        &self,
        customer: &CustomerId,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<Interaction>, StoreError> {
        if limit > CACHED_INTERACTIONS {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return self.inner.interactions(customer, now, limit).await;
        }
        let alive = |rows: &Vec<Interaction>| -> Vec<Interaction> {
            rows.iter()
                .filter(|row| row.at.saturating_add(INTERACTION_TTL_MS) > now)
                .take(limit)
                .cloned()
                .collect()
        };
        let cached = |entry: &Entry| match &entry.interactions {
            Some((fetched_at, rows)) if *fetched_at <= now => Some(alive(rows)),
            _ => None,
        };
        if let Some(rows) = self.lookup(customer, cached) {
            return Ok(rows);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let epoch = self.epoch(customer).load(Ordering::Acquire);
        let rows = self
            .inner
            .interactions(customer, now, CACHED_INTERACTIONS)
            .await?;
        let answer = alive(&rows);
        self.fill(customer, epoch, |entry| {
            entry.interactions = Some((now, rows))
        });
        Ok(answer)
    }

    async fn find_customer_by_identity(
        &self,
        channel: &Channel,
        external_id: &str,
    ) -> Result<Option<CustomerId>, StoreError> {
        self.inner
            .find_customer_by_identity(channel, external_id)
            .await
    }
    async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        self.inner.get_session(id).await
    }
    async fn sessions_of_customer(
        &self,
        id: &CustomerId,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError> {
        self.inner.sessions_of_customer(id, limit).await
    }
    async fn open_sessions(&self) -> Result<Vec<Session>, StoreError> {
        self.inner.open_sessions().await
    }
    async fn messages(
        &self,
        session: SessionId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.inner.messages(session, after_seq, limit).await
    }
    async fn purge_expired(&self, now: Millis) -> Result<u64, StoreError> {
        let result = self.inner.purge_expired(now).await;
        // Rows are gone from the store: a cached copy must not bring them back
        // (for a read at an earlier `now`). Purges are rare; drop all history.
        let mut lru = self.lock();
        for epoch in &self.epochs {
            epoch.fetch_add(1, Ordering::AcqRel);
        }
        for entry in lru.entries.values_mut() {
            entry.interactions = None;
        }
        result
    }
    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.inner.list_agents().await
    }
    async fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        self.inner.get_agent(id).await
    }
    async fn list_groups(&self) -> Result<Vec<SkillGroup>, StoreError> {
        self.inner.list_groups().await
    }
    async fn get_ticket(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        self.inner.get_ticket(id).await
    }
    async fn tickets_of_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.inner.tickets_of_customer(customer, limit).await
    }
    async fn ticket_events(
        &self,
        ticket: &TicketId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        self.inner.ticket_events(ticket, after_seq, limit).await
    }
    async fn list_articles(&self) -> Result<Vec<Article>, StoreError> {
        self.inner.list_articles().await
    }
    async fn list_templates(&self) -> Result<Vec<ReplyTemplate>, StoreError> {
        self.inner.list_templates().await
    }
    async fn get_summary(&self, session: SessionId) -> Result<Option<SessionSummary>, StoreError> {
        self.inner.get_summary(session).await
    }
    async fn audit_log(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<engine::supervision::AuditEntry>, StoreError> {
        self.inner.audit_log(since, until, limit).await
    }
    async fn sessions_queued(
        &self,
        from: Millis,
        to: Millis,
        after: Option<(Millis, SessionId)>,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError> {
        self.inner.sessions_queued(from, to, after, limit).await
    }
    async fn agent_log(
        &self,
        from: Millis,
        to: Millis,
        after: Option<(Millis, u64)>,
        limit: usize,
    ) -> Result<Vec<AgentLogEntry>, StoreError> {
        self.inner.agent_log(from, to, after, limit).await
    }
    async fn agent_activity_before(
        &self,
        agent: &AgentId,
        at: Millis,
    ) -> Result<Option<AgentLogEntry>, StoreError> {
        self.inner.agent_activity_before(agent, at).await
    }
    async fn outbox_due(&self, now: Millis, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.inner.outbox_due(now, limit).await
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests;
