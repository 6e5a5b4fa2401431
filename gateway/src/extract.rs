//! Extractors whose rejections are [`HttpError`]s: axum's own answer a bad
//! body or query with plain text, and the API promises JSON errors that name
//! the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::HttpError;

/// A JSON request body. Needs `Content-Type: application/json`; a body that
/// does not decode gives `400 invalid` with the field's path in the message
/// and in `details.field`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &S) -> Result<ApiJson<T>, HttpError> {
        require_content_type(request.headers(), is_json, "application/json")?;
        let bytes = body_bytes(request, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: no `Content-Type` and no bytes means `None`.
impl<T, S> OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &S) -> Result<Option<ApiJson<T>>, HttpError> {
        let has_content_type = request.headers().contains_key(CONTENT_TYPE);
        if has_content_type {
            require_content_type(request.headers(), is_json, "application/json")?;
        }
        let bytes = body_bytes(request, state).await?;
        if bytes.is_empty() && !has_content_type {
            return Ok(None);
        }
        parse_json(&bytes).map(|value| Some(ApiJson(value)))
    }
}

/// A TOML document sent as the raw body (`text/plain` or `application/toml`).
#[derive(Debug, Clone)]
pub struct TomlText(pub String);

impl<S> FromRequest<S> for TomlText
where
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &S) -> Result<TomlText, HttpError> {
        require_content_type(request.headers(), is_toml, "text/plain or application/toml")?;
        let bytes = body_bytes(request, state).await?;
        String::from_utf8(bytes.to_vec())
            .map(TomlText)
            .map_err(|err| HttpError::bad_request(format!("request body is not UTF-8: {err}")))
    }
}

/// Query parameters; a value of the wrong type gives `400 invalid` naming the
/// parameter. Unknown parameters (such as `token`) are ignored.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<ApiQuery<T>, HttpError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|err| {
                let field = err.path().to_string();
                let reason = err.into_inner().to_string();
                HttpError::bad_request(format!("invalid query parameter `{field}`: {reason}"))
                    .with_details(serde_json::json!({ "field": field }))
            })
    }
}

/// Decodes JSON, naming the field at fault on error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return HttpError::bad_request(format!("request body is not valid JSON: {inner}"));
        }
        let field = field_of(&path, &inner.to_string());
        if field.is_empty() {
            // The body as a whole is wrong (`null`, a list): no field to name.
            return HttpError::bad_request(format!("invalid request body: {inner}"));
        }
        HttpError::bad_request(format!("invalid `{field}`: {inner}"))
            .with_details(serde_json::json!({ "field": field }))
    })?;
    deserializer.end().map_err(|err| {
        HttpError::bad_request(format!("request body has trailing characters: {err}"))
    })?;
    Ok(value)
}

/// The dotted path of the field a serde error is about. serde reports a
/// missing field at the path of the object that should hold it, so its name
/// is taken from the message.
fn field_of(path: &str, message: &str) -> String {
    let parent = if path == "." { "" } else { path };
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (parent, missing) {
        ("", Some(name)) => name.to_string(),
        (parent, Some(name)) => format!("{parent}.{name}"),
        (parent, None) => parent.to_string(),
    }
}

/// The whole body, within the router's body limit.
async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, HttpError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "request body is larger than limits.max_http_body_bytes",
            ),
            status => HttpError::new(status, "invalid", rejection.body_text().to_lowercase()),
        })
}

fn require_content_type(
    headers: &HeaderMap,
    accepts: fn(&str) -> bool,
    expected: &str,
) -> Result<(), HttpError> {
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match media_type {
        Some(media_type) if accepts(&media_type) => Ok(()),
        Some(media_type) => Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid",
            format!("content type `{media_type}` is not accepted here: send {expected}"),
        )),
        None => Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid",
            format!("missing content type: send {expected}"),
        )),
    }
}

fn is_json(media_type: &str) -> bool {
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

fn is_toml(media_type: &str) -> bool {
    matches!(media_type, "text/plain" | "application/toml")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        #[serde(default)]
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        channel: String,
    }

    fn check(body: &str, expected_field: Option<&str>, expected_message: &str) {
        let err = parse_json::<Outer>(body.as_bytes()).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(err.body.code, "invalid", "{body}");
        let field = err
            .body
            .details
            .as_ref()
            .map(|d| d["field"].as_str().unwrap());
        assert_eq!(field, expected_field, "{body}");
        assert!(
            err.body.message.contains(expected_message),
            "{:?} should contain {expected_message:?}",
            err.body.message
        );
    }

    #[test]
    fn bad_bodies_name_the_field() {
        check("{", None, "request body is not valid JSON");
        check("", None, "request body is not valid JSON");
        check(r#"{"name":"a"} x"#, None, "trailing characters");
        check("{}", Some("name"), "invalid `name`: missing field `name`");
        // Found by the REST bodies' property test: no empty `details.field`.
        check("null", None, "invalid request body: invalid type: null");
        check("5", None, "invalid request body: invalid type: integer `5`");
        check(
            r#"{"name":5}"#,
            Some("name"),
            "invalid `name`: invalid type: integer `5`",
        );
        check(
            r#"{"name":"a","x":1}"#,
            Some("x"),
            "invalid `x`: unknown field `x`",
        );
        check(
            r#"{"name":"a","items":[{}]}"#,
            Some("items[0].channel"),
            "invalid `items[0].channel`: missing field `channel`",
        );
        check(
            r#"{"name":"a","items":[{"channel":1}]}"#,
            Some("items[0].channel"),
            "invalid type: integer `1`, expected a string",
        );
    }

    #[test]
    fn content_types() {
        for (media_type, json, toml) in [
            ("application/json", true, false),
            ("application/problem+json", true, false),
            ("text/plain", false, true),
            ("application/toml", false, true),
            ("text/html", false, false),
        ] {
            assert_eq!(
                (is_json(media_type), is_toml(media_type)),
                (json, toml),
                "{media_type}"
            );
        }
    }
}
