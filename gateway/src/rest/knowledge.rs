//! The knowledge base (search for everyone with a token, editing for
//! supervisors and admins) and the reply-template library with its
//! suggestions for a session.

use actors::platform::knowledge::KnowledgeError;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use engine::assist::{ReplyTemplate, Suggestion, TemplateVars, suggest};
use engine::ids::{ArticleId, SessionId, TemplateId};
use engine::kb::Article;
use engine::message::Sender;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::Caller;
use crate::auth::Role;
use crate::error::{ErrorBody, HttpError, engine_invalid, invalid_field, store_error};
use crate::extract::{ApiJson, ApiQuery};
use crate::rest::require_staff;
use crate::state::AppState;
use crate::wire::platform::{ArticleRecord, SearchHitRecord};

/// Results when `limit` is not given.
const DEFAULT_LIMIT: usize = 5;
/// The most results one request returns.
const MAX_LIMIT: usize = 50;
/// Messages read to find the customer's last one.
const MAX_MESSAGES_SCANNED: usize = 2_000;
/// Longest query or typed text, in characters.
const MAX_QUERY_CHARS: usize = 500;

/// `GET /api/v1/kb/search` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The words, Chinese (spaced or not) or English.
    pub q: String,
    /// Only articles in this language (`zh-CN`, `en`).
    pub language: Option<String>,
    /// 1-50; default 5.
    pub limit: Option<usize>,
}

/// An article as written by an editor (the id is in the path).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArticleBody {
    /// BCP 47 (`zh-CN`, `en`).
    pub language: String,
    /// One line.
    pub title: String,
    /// The text.
    pub body: String,
    /// Labels.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A template as written by an editor (the id is in the path).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// BCP 47.
    pub language: String,
    /// What agents see in the list.
    pub title: String,
    /// The reply; variables `{{customer.name}}`, `{{customer.tier}}`,
    /// `{{customer.id}}`, `{{agent.name}}`, `{{session.id}}`, `{{session.channel}}`.
    pub body: String,
    /// Phrases that make it the answer.
    #[serde(default)]
    pub triggers: Vec<String>,
}

/// A template.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateRecord {
    /// Id.
    pub id: String,
    /// Language.
    pub language: String,
    /// Title.
    pub title: String,
    /// Body with variables.
    pub body: String,
    /// Trigger phrases.
    pub triggers: Vec<String>,
}

impl From<&ReplyTemplate> for TemplateRecord {
    fn from(template: &ReplyTemplate) -> Self {
        TemplateRecord {
            id: template.id.to_string(),
            language: template.language.clone(),
            title: template.title.clone(),
            body: template.body.clone(),
            triggers: template.triggers.clone(),
        }
    }
}

/// `GET /api/v1/sessions/{id}/suggestions` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuggestQuery {
    /// What the agent is typing; when empty, the customer's last message is used.
    pub text: Option<String>,
    /// 1-50; default 5.
    pub limit: Option<usize>,
}

/// Templates ranked for a session, filled in.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestionList {
    /// The text they were matched against.
    pub matched_against: String,
    /// Best first.
    #[schema(value_type = Vec<Object>)]
    pub suggestions: Vec<Suggestion>,
}

fn limit(limit: Option<usize>) -> Result<usize, HttpError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    match (1..=MAX_LIMIT).contains(&limit) {
        true => Ok(limit),
        false => Err(invalid_field("limit", format!("must be 1 to {MAX_LIMIT}"))),
    }
}

fn require_editor(caller: &Caller) -> Result<(), HttpError> {
    match caller.role() {
        Role::Admin | Role::Supervisor => Ok(()),
        _ => Err(HttpError::forbidden(
            "editing the knowledge base and templates needs a supervisor or admin token",
        )),
    }
}

fn kb_error(err: engine::kb::KbError) -> HttpError {
    HttpError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        err.to_string(),
    )
}

/// A failed write is the store's error; a failed index change (the write
/// is durable) is `500 internal`.
fn knowledge_error(err: KnowledgeError) -> HttpError {
    match err {
        KnowledgeError::Write(err) | KnowledgeError::Reload(err) => store_error(err),
        KnowledgeError::Index(_) => HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            err.to_string(),
        ),
    }
}

fn unknown_article(id: &str) -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "unknown_article",
        format!("unknown article `{id}`"),
    )
}

/// Full-text search, Chinese (jieba) and English (stemmed, typo-tolerant).
#[utoipa::path(
    get,
    path = "/api/v1/kb/search",
    tag = "knowledge",
    params(SearchQuery),
    responses(
        (status = 200, description = "Best first, with highlighted snippets", body = Vec<SearchHitRecord>),
        (status = 400, description = "Bad `q` or `limit` (`invalid`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn search(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<Vec<SearchHitRecord>>, HttpError> {
    let limit = limit(query.limit)?;
    if query.q.trim().is_empty() || query.q.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid_field(
            "q",
            format!("must be 1 to {MAX_QUERY_CHARS} characters"),
        ));
    }
    let hits = state
        .platform
        .kb
        .search(&query.q, limit, query.language.as_deref())
        .map_err(kb_error)?;
    Ok(Json(hits.into_iter().map(SearchHitRecord::from).collect()))
}

/// Every article.
#[utoipa::path(
    get,
    path = "/api/v1/kb/articles",
    tag = "knowledge",
    responses(
        (status = 200, description = "By id", body = Vec<ArticleRecord>),
        (status = 401, description = "No valid token", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list_articles(
    State(state): State<AppState>,
    _caller: Caller,
) -> Json<Vec<ArticleRecord>> {
    Json(
        state
            .platform
            .kb
            .list()
            .iter()
            .map(ArticleRecord::from)
            .collect(),
    )
}

/// One article.
#[utoipa::path(
    get,
    path = "/api/v1/kb/articles/{id}",
    tag = "knowledge",
    params(("id" = String, Path, description = "Article id")),
    responses(
        (status = 200, description = "The article", body = ArticleRecord),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such article (`unknown_article`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_article(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ArticleRecord>, HttpError> {
    let article = state
        .platform
        .kb
        .get(&ArticleId::new(&id))
        .ok_or_else(|| unknown_article(&id))?;
    Ok(Json(ArticleRecord::from(&article)))
}

/// Creates or replaces an article; searchable when this answers.
#[utoipa::path(
    put,
    path = "/api/v1/kb/articles/{id}",
    tag = "knowledge",
    params(("id" = String, Path, description = "Article id: 1-64 of a-z, 0-9, `-`")),
    request_body = ArticleBody,
    responses(
        (status = 200, description = "Stored and indexed", body = ArticleRecord),
        (status = 400, description = "A field is invalid (`invalid`, `details.field`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn put_article(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ArticleBody>,
) -> Result<Json<ArticleRecord>, HttpError> {
    require_editor(&caller)?;
    let article = Article {
        id: ArticleId::new(id),
        language: body.language,
        title: body.title,
        body: body.body,
        tags: body.tags,
        updated_at: engine::now_millis(),
    }
    .validated()
    .map_err(engine_invalid)?;
    let record = ArticleRecord::from(&article);
    state
        .platform
        .put_article(article)
        .await
        .map_err(knowledge_error)?;
    Ok(Json(record))
}

/// Deletes an article.
#[utoipa::path(
    delete,
    path = "/api/v1/kb/articles/{id}",
    tag = "knowledge",
    params(("id" = String, Path, description = "Article id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
        (status = 404, description = "No such article (`unknown_article`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn delete_article(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    require_editor(&caller)?;
    let article_id = ArticleId::new(&id);
    if state.platform.kb.get(&article_id).is_none() {
        return Err(unknown_article(&id));
    }
    state
        .platform
        .delete_article(article_id)
        .await
        .map_err(knowledge_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The reply-template library.
#[utoipa::path(
    get,
    path = "/api/v1/templates",
    tag = "knowledge",
    responses(
        (status = 200, description = "By id", body = Vec<TemplateRecord>),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Customers may not read templates", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list_templates(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TemplateRecord>>, HttpError> {
    caller.require_staff()?;
    Ok(Json(
        state
            .platform
            .templates()
            .iter()
            .map(TemplateRecord::from)
            .collect(),
    ))
}

/// Creates or replaces a template.
#[utoipa::path(
    put,
    path = "/api/v1/templates/{id}",
    tag = "knowledge",
    params(("id" = String, Path, description = "Template id: 1-64 of a-z, 0-9, `-`")),
    request_body = TemplateBody,
    responses(
        (status = 200, description = "Stored", body = TemplateRecord),
        (status = 400, description = "A field is invalid or the body uses an unknown variable (`invalid`, `details.field`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn put_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Json<TemplateRecord>, HttpError> {
    require_editor(&caller)?;
    let template = ReplyTemplate {
        id: TemplateId::new(id),
        language: body.language,
        title: body.title,
        body: body.body,
        triggers: body.triggers,
        updated_at: engine::now_millis(),
    }
    .validated()
    .map_err(engine_invalid)?;
    let record = TemplateRecord::from(&template);
    state
        .platform
        .put_template(template)
        .await
        .map_err(knowledge_error)?;
    Ok(Json(record))
}

/// Deletes a template.
#[utoipa::path(
    delete,
    path = "/api/v1/templates/{id}",
    tag = "knowledge",
    params(("id" = String, Path, description = "Template id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
        (status = 404, description = "No such template (`unknown_template`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn delete_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    require_editor(&caller)?;
    let platform = &state.platform;
    if !platform.templates().iter().any(|t| t.id.as_str() == id) {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "unknown_template",
            format!("unknown template `{id}`"),
        ));
    }
    platform
        .delete_template(TemplateId::new(id))
        .await
        .map_err(knowledge_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reply templates for a session, best first, filled from its customer, its
/// agent and itself: matched against what the agent is typing, or else the
/// customer's last message.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}/suggestions",
    tag = "knowledge",
    params(("id" = String, Path, description = "Session id (decimal)"), SuggestQuery),
    responses(
        (status = 200, description = "Suggestions, best first", body = SuggestionList),
        (status = 400, description = "Bad `text` or `limit` (`invalid`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not offered or assigned to the caller (`not_your_session`)", body = ErrorBody),
        (status = 404, description = "No such session (`unknown_session`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn suggestions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<SuggestQuery>,
) -> Result<Json<SuggestionList>, HttpError> {
    let profile = require_staff(&caller, &state).await?;
    let limit = limit(query.limit)?;
    let unknown = || {
        HttpError::new(
            StatusCode::NOT_FOUND,
            "unknown_session",
            format!("unknown session `{id}`"),
        )
    };
    let session_id = id.parse::<u64>().map(SessionId).map_err(|_| unknown())?;
    let store = &state.platform.store;
    let session = store
        .get_session(session_id)
        .await
        .map_err(store_error)?
        .ok_or_else(unknown)?;
    caller.check_session_read(&state, &session).await?;
    let typed = query.text.unwrap_or_default();
    if typed.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid_field(
            "text",
            format!("at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let text = match typed.trim().is_empty() {
        false => typed,
        true => {
            let recent = store
                .messages(session.id, 0, MAX_MESSAGES_SCANNED)
                .await
                .map_err(store_error)?;
            recent
                .into_iter()
                .rev()
                .find(|m| m.sender == Sender::Customer)
                .map(|m| m.body)
                .unwrap_or_default()
        }
    };
    let customer = store
        .get_customer(&session.customer_id)
        .await
        .map_err(store_error)?;
    let mut vars = TemplateVars::new();
    if let Some(customer) = customer {
        vars.insert("customer.name", customer.display_name);
        vars.insert("customer.tier", customer.tier);
    }
    vars.insert("customer.id", session.customer_id.to_string());
    vars.insert("session.id", session.id.to_string());
    vars.insert("session.channel", session.channel.to_string());
    if let Some(agent) = profile {
        vars.insert("agent.name", agent.display_name);
    }
    let suggestions = suggest(&state.platform.templates(), &text, &vars, limit);
    Ok(Json(SuggestionList {
        matched_against: text,
        suggestions,
    }))
}
