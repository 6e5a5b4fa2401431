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
//! └── workers    the outbox: webhook deliveries and session-ended jobs (summaries)
//! ```
//!
//! Architecture invariant: nothing here is on the message hot path. Session
//! actors never wait for the platform; a session's end leaves a job in the
//! outbox, in the same batch, and the platform works on its own tasks.

pub mod summaries;
pub mod tickets;
pub mod view;
pub mod webhooks;
pub mod wire;

use std::sync::{Arc, RwLock};

use actors::{Audience, Subscription, event::Hub};
use anyhow::{Context, Result};
use engine::assist::ReplyTemplate;
use engine::kb::KbIndex;
use store::{CachedStore, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;

/// A frame pushed to sockets outside any session's `seq` order (`ticket`,
/// `customer_view`): a JSON object with a `type`.
pub type Notice = serde_json::Value;

/// Notices one socket may have unread before newer ones are skipped (the
/// client re-reads over REST; nothing durable is lost).
const NOTICE_BUFFER: usize = 256;

/// Everything the data platform shares.
pub struct Platform {
    /// The store, through the customer cache.
    pub store: Arc<dyn Store>,
    /// The cache itself, for its statistics.
    pub cache: Arc<CachedStore>,
    /// Knowledge-base search.
    pub kb: KbIndex,
    templates: RwLock<Arc<Vec<ReplyTemplate>>>,
    /// Pushes to customer and agent sockets.
    pub notices: Hub<Notice>,
    /// Tickets: ids, write order, watchers.
    pub desk: tickets::TicketDesk,
    /// Outbound webhooks.
    pub webhooks: webhooks::Webhooks,
    /// Whether sessions that end are summarized (`platform.summaries`).
    pub summaries: bool,
    /// Stops the workers at shutdown.
    stop: CancellationToken,
    workers: TaskTracker,
}

impl Platform {
    /// Loads articles and templates from the store and builds the index.
    pub async fn load(cache: Arc<CachedStore>, config: &Config) -> Result<Arc<Platform>> {
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
        Ok(Arc::new(Platform {
            store,
            cache,
            kb,
            templates: RwLock::new(Arc::new(templates)),
            notices: Hub::default(),
            desk: tickets::TicketDesk::new(config.runtime().node_id),
            webhooks: webhooks::Webhooks::new(config.webhooks.clone()),
            summaries: config.platform.summaries,
            stop: CancellationToken::new(),
            workers: TaskTracker::new(),
        }))
    }

    /// Starts the outbox worker (webhook deliveries and session-ended jobs)
    /// and the task that wakes it at each session end.
    pub fn start_workers(self: &Arc<Self>, switchboard: &actors::Switchboard) {
        let platform = self.clone();
        self.workers
            .spawn(async move { platform.webhooks.run(&platform).await });
        let ended = switchboard.subscribe_ended(summaries::ENDED_BUFFER);
        let platform = self.clone();
        self.workers
            .spawn(async move { summaries::wake_on_ends(platform, ended).await });
    }

    /// Stops the workers, waiting at most `grace` for a delivery in flight.
    pub async fn stop(&self, grace: std::time::Duration) {
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
    pub async fn reload_templates(&self) -> Result<(), store::StoreError> {
        let templates = self.store.list_templates().await?;
        *self.templates.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(templates);
        Ok(())
    }
}
