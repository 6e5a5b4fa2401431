//! Knowledge-base articles and reply templates: written through the
//! StoreWriter, then the search index or the template library follows.

use std::sync::Arc;

use engine::assist::ReplyTemplate;
use engine::ids::{ArticleId, TemplateId};
use engine::kb::Article;
use store::{StoreError, WriteOp};
use thiserror::Error;

use super::Platform;
use crate::remote::KnowledgeChange;

/// Why an article or template write failed.
#[derive(Debug, Error)]
pub enum KnowledgeError {
    /// The write failed (or its outcome is unknown: [`StoreError::OutcomeUnknown`]).
    #[error(transparent)]
    Write(#[from] StoreError),
    /// The write is durable but the search index did not take it; the next
    /// start indexes it.
    #[error("{0}")]
    Index(String),
    /// The write is durable but the template library could not be re-read.
    #[error("{0}")]
    Reload(StoreError),
}

impl Platform {
    /// Creates or replaces an article; searchable once this returns.
    /// (In a cluster the other nodes' indexes and libraries follow within
    /// milliseconds: [`Platform::follow_knowledge`].)
    pub async fn put_article(self: &Arc<Self>, article: Article) -> Result<(), KnowledgeError> {
        let id = article.id.clone();
        self.write(vec![WriteOp::PutArticle(article.clone())])
            .await?;
        self.switchboard
            .knowledge_changed(KnowledgeChange::Article(id));
        self.index(move |kb| kb.upsert(article)).await
    }

    /// Deletes an article from the store and the index.
    pub async fn delete_article(self: &Arc<Self>, id: ArticleId) -> Result<(), KnowledgeError> {
        self.write(vec![WriteOp::DeleteArticle(id.clone())]).await?;
        self.switchboard
            .knowledge_changed(KnowledgeChange::Article(id.clone()));
        self.index(move |kb| kb.remove(&id).map(|_| ())).await
    }

    /// Creates or replaces a template; suggested once this returns.
    pub async fn put_template(&self, template: ReplyTemplate) -> Result<(), KnowledgeError> {
        self.write(vec![WriteOp::PutTemplate(template)]).await?;
        self.switchboard
            .knowledge_changed(KnowledgeChange::Templates);
        self.reload_templates()
            .await
            .map_err(KnowledgeError::Reload)
    }

    /// Deletes a template.
    pub async fn delete_template(&self, id: TemplateId) -> Result<(), KnowledgeError> {
        self.write(vec![WriteOp::DeleteTemplate(id)]).await?;
        self.switchboard
            .knowledge_changed(KnowledgeChange::Templates);
        self.reload_templates()
            .await
            .map_err(KnowledgeError::Reload)
    }

    /// Follows a change another node made: the article is read again from
    /// the store (indexed, or removed when it is gone), or the template
    /// library is. A failure is logged; the next start reads everything.
    pub(crate) async fn follow_knowledge(self: Arc<Self>, change: KnowledgeChange) {
        let result = match change {
            KnowledgeChange::Article(id) => match self.store.list_articles().await {
                Ok(articles) => match articles.into_iter().find(|article| article.id == id) {
                    Some(article) => self.index(move |kb| kb.upsert(article)).await,
                    None => self.index(move |kb| kb.remove(&id).map(|_| ())).await,
                },
                Err(err) => Err(KnowledgeError::Write(err)),
            },
            KnowledgeChange::Templates => self
                .reload_templates()
                .await
                .map_err(KnowledgeError::Reload),
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "cannot follow a knowledge change made on another node");
        }
    }

    /// Runs an index change off the runtime's threads (tantivy commits block).
    async fn index(
        self: &Arc<Self>,
        change: impl FnOnce(&engine::kb::KbIndex) -> Result<(), engine::kb::KbError> + Send + 'static,
    ) -> Result<(), KnowledgeError> {
        let platform = self.clone();
        tokio::task::spawn_blocking(move || change(&platform.kb))
            .await
            .map_err(|err| KnowledgeError::Index(err.to_string()))?
            .map_err(|err| KnowledgeError::Index(err.to_string()))
    }
}
