//! Customer profiles and their channel identities.
//!
//! A customer asking for another customer's record gets `404
//! unknown_customer`, the same answer as for an id that does not exist, so
//! customer ids cannot be probed (as with sessions).

use actors::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use engine::EngineError;
use engine::channel::{Channel, ChannelRegistry};
use engine::customer::{Customer, Identity};
use engine::ids::CustomerId;
use store::{StoreError, WriteOp};
use tokio::sync::Mutex;

use crate::access::Caller;
use crate::error::{ErrorBody, HttpError, invalid_field, store_error};
use crate::extract::ApiJson;
use crate::rest::require_staff;
use crate::rest::types::NewCustomer;
use crate::state::AppState;
use crate::wire::records::{CustomerRecord, IdentityBody};

/// Serializes "check the id is free, then write" so that two creates of one
/// id cannot both succeed (the store's put is an upsert). Process-wide: one
/// server per process in production; tests with several only wait a little.
static CREATE_CUSTOMER: Mutex<()> = Mutex::const_new(());

/// Longest customer id.
const MAX_ID_CHARS: usize = 128;
/// Longest display name.
const MAX_NAME_CHARS: usize = 200;
/// Most tags on one customer.
const MAX_TAGS: usize = 32;
/// Longest tag.
const MAX_TAG_CHARS: usize = 64;
/// Longest external id on a channel.
const MAX_EXTERNAL_ID_CHARS: usize = 256;

/// A customer profile with every linked identity. Who may read it is the
/// rule of the 360° view (`crate::access::customers`): the customer
/// themself; an agent while a session of the customer is offered or
/// assigned to them (or in wrap-up); a supervisor for customers of their
/// groups; admins always.
#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = String, Path, description = "Customer id")),
    responses(
        (status = 200, description = "The customer", body = CustomerRecord),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No session of this customer is offered or assigned to the caller, nor (supervisors) in one of their groups (`not_your_customer`)", body = ErrorBody),
        (status = 404, description = "No such customer, or (for customers) not the caller (`unknown_customer`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_customer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CustomerRecord>, HttpError> {
    let id = CustomerId::new(id);
    let unknown = || HttpError::from(ApiError::from(EngineError::UnknownCustomer(id.to_string())));
    crate::access::customers::check_customer(&caller, &state, &id).await?;
    let customer = state
        .switchboard
        .store()
        .get_customer(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(unknown)?;
    Ok(Json(CustomerRecord::from(&customer)))
}

/// The customer 360° view: profile, identities on every channel, the last
/// 30 days of interactions across channels, recent sessions, tickets and the
/// last auto-summary. Agents see it while a session of the customer is
/// offered or assigned to them; supervisors for customers of their groups.
#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}/view",
    tag = "customers",
    params(("id" = String, Path, description = "Customer id")),
    responses(
        (status = 200, description = "The 360° view", body = crate::wire::platform::CustomerView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No session of this customer is offered or assigned to the caller (`not_your_customer`)", body = ErrorBody),
        (status = 404, description = "No such customer, or (for customers) not the caller (`unknown_customer`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_customer_view(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<crate::wire::platform::CustomerView>, HttpError> {
    let id = CustomerId::new(id);
    crate::access::customers::check_customer(&caller, &state, &id).await?;
    let for_staff = caller.customer_id().is_none();
    let view = state
        .platform
        .customer_view(&id, for_staff)
        .await
        .map_err(store_error)?;
    view.map(|view| Json(crate::wire::platform::CustomerView::from(&view)))
        .ok_or_else(|| {
            HttpError::from(ApiError::from(EngineError::UnknownCustomer(id.to_string())))
        })
}

/// Creates a customer, optionally with channel identities.
#[utoipa::path(
    post,
    path = "/api/v1/customers",
    tag = "customers",
    request_body = NewCustomer,
    responses(
        (status = 201, description = "Created", body = CustomerRecord),
        (status = 400, description = "A field is invalid (`invalid`, `details.field` names it) or a channel is unknown (`unknown_channel`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Customers may not create customers", body = ErrorBody),
        (status = 409, description = "The id exists (`customer_exists`) or an identity belongs to another customer (`identity_taken`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create_customer(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NewCustomer>,
) -> Result<(StatusCode, Json<CustomerRecord>), HttpError> {
    require_staff(&caller, &state).await?;
    let customer = validate_new_customer(request)?;
    let store = state.switchboard.store();
    let _creating = CREATE_CUSTOMER.lock().await;
    if store
        .get_customer(&customer.id)
        .await
        .map_err(store_error)?
        .is_some()
    {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            "customer_exists",
            format!("customer `{}` already exists", customer.id),
        ));
    }
    for identity in &customer.identities {
        let owner = store
            .find_customer_by_identity(&identity.channel, &identity.external_id)
            .await
            .map_err(store_error)?;
        if let Some(owner) = owner {
            return Err(identity_taken(identity, &owner));
        }
    }
    state
        .switchboard
        .write(vec![WriteOp::PutCustomer(customer.clone())])
        .await
        .map_err(|err| write_error(err.into()))?;
    tracing::info!(customer_id = %customer.id, by = %caller.claims.sub, "customer created");
    let created = store
        .get_customer(&customer.id)
        .await
        .map_err(store_error)?
        .unwrap_or(customer);
    Ok((StatusCode::CREATED, Json(CustomerRecord::from(&created))))
}

/// Links one more channel identity to a customer. Linking an identity the
/// customer already has changes nothing. The answer is the whole profile,
/// so staff may link only to customers whose profile they may read.
#[utoipa::path(
    post,
    path = "/api/v1/customers/{id}/identities",
    tag = "customers",
    params(("id" = String, Path, description = "Customer id")),
    request_body = IdentityBody,
    responses(
        (status = 200, description = "The customer with the identity linked", body = CustomerRecord),
        (status = 400, description = "Unknown channel (`unknown_channel`) or invalid external id (`invalid`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Customers may not link identities (`forbidden`); no session of this customer is offered or assigned to the caller (`not_your_customer`)", body = ErrorBody),
        (status = 404, description = "No such customer (`unknown_customer`)", body = ErrorBody),
        (status = 409, description = "The identity belongs to another customer (`identity_taken`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn link_identity(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<IdentityBody>,
) -> Result<Json<CustomerRecord>, HttpError> {
    require_staff(&caller, &state).await?;
    let id = CustomerId::new(id);
    crate::access::customers::check_customer(&caller, &state, &id).await?;
    let identity = validate_identity(&request, "")?;
    let store = state.switchboard.store();
    let unknown = || HttpError::from(ApiError::from(EngineError::UnknownCustomer(id.to_string())));
    store
        .get_customer(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(unknown)?;
    let owner = store
        .find_customer_by_identity(&identity.channel, &identity.external_id)
        .await
        .map_err(store_error)?;
    match owner {
        Some(owner) if owner != id => return Err(identity_taken(&identity, &owner)),
        Some(_) => {}
        None => {
            let op = WriteOp::LinkIdentity {
                customer: id.clone(),
                identity: identity.clone(),
            };
            state
                .switchboard
                .write(vec![op])
                .await
                .map_err(|err| write_error(err.into()))?;
            tracing::info!(customer_id = %id, identity = %identity, by = %caller.claims.sub, "identity linked");
        }
    }
    let customer = store
        .get_customer(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(unknown)?;
    Ok(Json(CustomerRecord::from(&customer)))
}

/// A display name: trimmed, 1-200 characters, no control characters.
pub(crate) fn check_display_name(name: &str) -> Result<String, HttpError> {
    let name = name.trim();
    check_text("display_name", name, MAX_NAME_CHARS)?;
    Ok(name.to_string())
}

fn validate_new_customer(request: NewCustomer) -> Result<Customer, HttpError> {
    check_customer_id(&request.id)?;
    let display_name = check_display_name(&request.display_name)?;
    let mut customer = Customer::new(request.id.as_str(), display_name);
    if let Some(tier) = request.tier {
        let valid = !tier.is_empty()
            && tier.len() <= 32
            && tier
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(invalid_field(
                "tier",
                "use 1-32 characters of a-z, 0-9, `_` or `-`",
            ));
        }
        customer.tier = tier;
    }
    if let Some(language) = request.language {
        let valid = (2..=35).contains(&language.len())
            && language
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return Err(invalid_field(
                "language",
                "use a BCP 47 tag such as `zh-CN` or `en`",
            ));
        }
        customer.language = language;
    }
    if request.tags.len() > MAX_TAGS {
        return Err(invalid_field("tags", format!("at most {MAX_TAGS} tags")));
    }
    for (tag_idx, tag) in request.tags.iter().enumerate() {
        check_text(&format!("tags[{tag_idx}]"), tag, MAX_TAG_CHARS)?;
    }
    customer.tags = request.tags;
    for (identity_idx, identity) in request.identities.iter().enumerate() {
        let identity = validate_identity(identity, &format!("identities[{identity_idx}]."))?;
        if !customer.identities.contains(&identity) {
            customer.identities.push(identity);
        }
    }
    customer.created_at = engine::now_millis();
    Ok(customer)
}

/// 1-128 characters of letters, digits, `-`, `_`, `.`, `@` and `+`.
fn check_customer_id(id: &str) -> Result<(), HttpError> {
    if id.contains(':') {
        return Err(invalid_field(
            "id",
            "`:` is reserved for ids the engine makes from channel identities",
        ));
    }
    let valid = !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+'));
    match valid {
        true => Ok(()),
        false => Err(invalid_field(
            "id",
            format!("use 1-{MAX_ID_CHARS} letters, digits, `-`, `_`, `.`, `@` or `+`"),
        )),
    }
}

/// A channel the deployment accepts and an external id of 1-256 characters.
/// `prefix` locates the identity in the request (`identities[0].`).
fn validate_identity(body: &IdentityBody, prefix: &str) -> Result<Identity, HttpError> {
    // TODO(actors-api): use the switchboard's own registry once the handle
    // exposes it; the server starts the engine with the built-in channels only.
    let channel: Channel = ChannelRegistry::default()
        .resolve(&body.channel)
        .map_err(|err| {
            HttpError::from(ApiError::from(err))
                .with_details(serde_json::json!({ "field": format!("{prefix}channel") }))
        })?;
    check_text(
        &format!("{prefix}external_id"),
        &body.external_id,
        MAX_EXTERNAL_ID_CHARS,
    )?;
    Ok(Identity {
        channel,
        external_id: body.external_id.clone(),
    })
}

/// Not empty, not too long, no control characters, no surrounding spaces.
fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), HttpError> {
    if text.trim().is_empty() {
        return Err(invalid_field(field, "must not be empty"));
    }
    if text.trim() != text {
        return Err(invalid_field(field, "must not start or end with spaces"));
    }
    if text.chars().count() > max_chars {
        return Err(invalid_field(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid_field(field, "must not contain control characters"));
    }
    Ok(())
}

fn identity_taken(identity: &Identity, owner: &CustomerId) -> HttpError {
    HttpError::new(
        StatusCode::CONFLICT,
        "identity_taken",
        format!("identity {identity} already belongs to customer `{owner}`"),
    )
    .with_details(serde_json::json!({
        "channel": identity.channel.as_str(),
        "external_id": identity.external_id,
        "owner": owner.as_str(),
    }))
}

/// A write failed: a race on an identity is a conflict, anything else the store's fault.
fn write_error(err: ApiError) -> HttpError {
    match err {
        ApiError::Store(StoreError::IdentityTaken {
            channel,
            external_id,
            owner,
        }) => identity_taken(
            &Identity {
                channel,
                external_id,
            },
            &owner,
        ),
        other => HttpError::from(other),
    }
}
