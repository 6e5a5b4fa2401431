//! The data platform: one source of customer history, tickets and knowledge
//! that every channel and every agent sees live.
//!
//! ```text
//! Platform
//! ├── cache      CachedStore in front of the store: hot profiles and history
//! ├── kb         KbIndex (tantivy + jieba), follows every article write
//! ├── templates  the reply-template library, replaced whole on each write
//! ├── notices    Hub<Notice>: ticket changes and 360° views pushed to sockets
//! ├── desk       ticket ids, per-ticket write order, who is watching what
//! └── outbox     the outbox worker: deliveries through the couriers and
//!                session-ended jobs (summaries)
//! ```
//!
//! Architecture invariant: every write of the platform goes through the
//! StoreWriter ([`Switchboard::write`]), so it is group committed and
//! ordered with the actors' own writes; nothing here writes to the store
//! directly. Reads go to the store through the customer cache.
//!
//! Architecture invariant: nothing here is on the message hot path. Session
//! actors never wait for the platform; a session's end leaves a job in the
//! outbox, in the same batch, and the platform works on its own tasks.
//!
//! The platform knows no wire format: what it pushes is a typed [`Notice`],
//! what it reports to the outside world a [`PlatformEvent`] that an
//! [`EventEncoder`] turns into outbox entries, and a [`Courier`] delivers
//! them. The gateway implements all three in JSON and HTTP.

pub mod knowledge;
pub mod outbox;
pub mod summaries;
pub mod tickets;
pub mod view;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use engine::assist::ReplyTemplate;
use engine::ids::SessionId;
use engine::kb::KbIndex;
use engine::outbox::RetryPolicy;
use engine::ticket::{Ticket, TicketEvent};
use store::{CachedStore, Store, StoreError, WriteOp};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::event::{Audience, Hub, Subscription};
use crate::handle::Switchboard;

pub use outbox::{Courier, DeliveryError, EventEncoder, PlatformEvent};
pub use tickets::{TicketDesk, TicketError};
pub use view::CustomerView;

/// What the platform pushes to sockets outside any session's `seq` order.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A ticket changed: the record after the change and the new history
    /// entries. Sent to the customer's sockets and to every agent watching
    /// the ticket (and its assignee).
    Ticket {
        /// The ticket after the change.
        ticket: Box<Ticket>,
        /// The history entries the change added.
        events: Vec<TicketEvent>,
    },
    /// The customer's 360° view, built for an offer of `session`.
    CustomerView {
        /// The offered session.
        session: SessionId,
        /// The view, as staff see it.
        view: Box<CustomerView>,
    },
    /// A supervisor set the agent's presence (sent to the agent's sockets).
    PresenceForced {
        /// The agent's presence now.
        presence: engine::presence::Presence,
        /// Who set it.
        by: engine::supervision::Actor,
        /// Why.
        reason: String,
    },
}

/// Notices one socket may have unread before newer ones are skipped (the
/// client re-reads over REST; nothing durable is lost).
const NOTICE_BUFFER: usize = 256;

/// The platform's knobs, as plain values (the gateway's config maps to them).
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    /// Whether sessions that end are summarized.
    pub summaries: bool,
    /// How failed deliveries and jobs are retried.
    pub retry: RetryPolicy,
    /// The outbox worker reads the outbox at least this often (it is also
    /// woken at once by the platform's own outbox writes).
    pub poll: Duration,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        PlatformSettings {
            summaries: true,
            retry: RetryPolicy::default(),
            poll: Duration::from_secs(1),
        }
    }
}

/// Everything the data platform shares.
pub struct Platform {
    /// The store, through the customer cache, for reads. Writes go through
    /// [`Platform::write`].
    pub store: Arc<dyn Store>,
    /// The cache itself, for its statistics.
    pub cache: Arc<CachedStore>,
    /// Knowledge-base search.
    pub kb: KbIndex,
    templates: RwLock<Arc<Vec<ReplyTemplate>>>,
    /// Pushes to customer and agent sockets.
    notices: Hub<Notice>,
    /// Tickets: ids, write order, watchers.
    pub desk: TicketDesk,
    /// The outbox: what reports events, what delivers them, the worker's wake-up.
    pub outbox: outbox::Outbox,
    /// Whether sessions that end are summarized.
    pub summaries: bool,
    /// The runtime: every write goes through its StoreWriter.
    switchboard: Switchboard,
    /// Stops the workers at shutdown.
    stop: CancellationToken,
    workers: TaskTracker,
}

impl Platform {
    /// Loads articles and templates through `cache` (the store `switchboard`
    /// runs on, so that its writes drop what they change) and builds the
    /// index. `encoder` turns platform events into outbox entries;
    /// `couriers` deliver them (the first that [`Courier::delivers`] an
    /// entry's endpoint takes it).
    pub async fn load(
        switchboard: Switchboard,
        cache: Arc<CachedStore>,
        settings: PlatformSettings,
        encoder: Arc<dyn EventEncoder>,
        couriers: Vec<Arc<dyn Courier>>,
    ) -> anyhow::Result<Arc<Platform>> {
        use anyhow::Context;
        let store: Arc<dyn Store> = cache.clone();
        let articles = store
            .list_articles()
            .await
            .context("failed to read kb_articles")?;
        let n_articles = articles.len();
        let kb = tokio::task::spawn_blocking(move || KbIndex::build(articles))
            .await
            .context("knowledge-base indexing task failed")?
            .context("failed to index the knowledge base")?;
        let templates = store
            .list_templates()
            .await
            .context("failed to read reply_templates")?;
        tracing::info!(
            n_articles,
            n_templates = templates.len(),
            "data platform loaded"
        );
        switchboard.report_session_events(encoder.clone());
        let platform = Arc::new(Platform {
            store,
            cache,
            kb,
            templates: RwLock::new(Arc::new(templates)),
            notices: Hub::default(),
            desk: TicketDesk::new(switchboard.node_id()),
            outbox: outbox::Outbox::new(encoder, couriers, settings.retry, settings.poll),
            summaries: settings.summaries,
            switchboard,
            stop: CancellationToken::new(),
            workers: TaskTracker::new(),
        });
        // Changes other nodes make are followed one at a time, in the order
        // they came (a put then a delete of one article stays deleted).
        let (changes, mut to_follow) = tokio::sync::mpsc::unbounded_channel();
        platform
            .switchboard
            .on_knowledge_change(Arc::new(move |change| {
                // The follower ends only with the platform.
                let _ = changes.send(change);
            }));
        let follower = Arc::downgrade(&platform);
        tokio::spawn(async move {
            while let Some(change) = to_follow.recv().await {
                let Some(platform) = follower.upgrade() else {
                    return;
                };
                platform.follow_knowledge(change).await;
            }
        });
        Ok(platform)
    }

    /// Starts the outbox worker (deliveries and session-ended jobs) and the
    /// task that wakes it at each session end.
    pub fn start_workers(self: &Arc<Self>) {
        let platform = self.clone();
        self.workers
            .spawn(async move { outbox::run(&platform).await });
        let ended = self.switchboard.subscribe_ended(summaries::ENDED_BUFFER);
        let platform = self.clone();
        self.workers
            .spawn(async move { summaries::wake_on_ends(platform, ended).await });
    }

    /// Stops the workers, waiting at most `grace` for a delivery in flight.
    pub async fn stop(&self, grace: Duration) {
        self.stop.cancel();
        self.workers.close();
        if tokio::time::timeout(grace, self.workers.wait())
            .await
            .is_err()
        {
            tracing::warn!("data platform workers still busy after the grace period");
        }
    }

    /// Cancelled at shutdown.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stop
    }

    /// Makes `ops` durable through the StoreWriter ([`Switchboard::write`]).
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.switchboard.write(ops).await
    }

    /// Notices for one customer's or agent's sockets, from now on.
    pub fn subscribe(&self, audience: Audience) -> Subscription<Notice> {
        self.notices.subscribe(audience, NOTICE_BUFFER)
    }

    /// Sends a notice; a socket that has too many unread skips it.
    pub fn notify(&self, audience: &Audience, notice: &Notice) {
        self.notices.publish_ephemeral(audience, notice);
    }

    /// The template library now.
    pub fn templates(&self) -> Arc<Vec<ReplyTemplate>> {
        self.templates
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the template library after a write.
    async fn reload_templates(&self) -> Result<(), StoreError> {
        let templates = self.store.list_templates().await?;
        *self.templates.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(templates);
        Ok(())
    }
}
