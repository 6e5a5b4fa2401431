//! `server.cors_allow_origins`: which origins browsers may call the API from.

use axum::http::HeaderValue;

/// Checks `server.cors_allow_origins`: `*` alone, or origins such as
/// `https://crm.example.com` (scheme, host, optional port; no path).
pub fn validate_cors_origins(origins: &[String]) -> Result<(), String> {
    if origins.iter().any(|origin| origin == "*") {
        if origins.len() > 1 {
            return Err("`*` allows every origin; list it alone".into());
        }
        return Ok(());
    }
    for origin in origins {
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .ok_or_else(|| format!("`{origin}` must start with https:// or http://"))?;
        if rest.is_empty() || rest.contains('/') || HeaderValue::from_str(origin).is_err() {
            return Err(format!(
                "`{origin}` is not an origin (scheme://host[:port], no path, no trailing slash)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(origins: &[&str], expected: Result<(), &str>) {
        let origins: Vec<String> = origins.iter().map(|origin| origin.to_string()).collect();
        let result = validate_cors_origins(&origins);
        match expected {
            Ok(()) => assert_eq!(result, Ok(()), "{origins:?}"),
            Err(part) => {
                let err = result.expect_err("should be refused");
                assert!(err.contains(part), "{origins:?}: {err}");
            }
        }
    }

    #[test]
    fn cors_origins_are_checked() {
        check(&[], Ok(()));
        check(&["*"], Ok(()));
        check(&["https://crm.example.com"], Ok(()));
        check(&["http://127.0.0.1:3000", "https://a.example"], Ok(()));
        check(&["*", "https://a.example"], Err("alone"));
        check(&["crm.example.com"], Err("https://"));
        check(&["https://crm.example.com/"], Err("no path"));
        check(&["https://"], Err("not an origin"));
        check(&["https://a.example\n"], Err("not an origin"));
    }
}
