//! What a failed write request says about the write: a request that never
//! left the driver, or that a node refused before applying it, wrote
//! nothing ([`StoreError::Backend`]); one that reached a node and whose
//! answer did not come back may have been applied
//! ([`StoreError::OutcomeUnknown`]). Callers tell their clients the
//! difference: "nothing was stored, retry" against "resend with the same
//! client id".
//!
//! Only the driver's last attempt is classified. The conditional writes
//! are not idempotent, so the driver's default retry policy retries them
//! only after a node refused them; the logged batch is idempotent and may
//! be retried after a timeout, so a refusal of its retry is taken as an
//! unknown outcome too (see [`write_error`]).

use scylla::errors::{DbError, ExecutionError, RequestAttemptError};

use crate::StoreError;

/// Whether a write request that failed with `err` may have been applied.
pub(super) fn may_have_applied(err: &ExecutionError) -> bool {
    match err {
        // Sent, and the driver stopped waiting.
        ExecutionError::RequestTimeout(_) => true,
        ExecutionError::LastAttemptError(attempt) => attempt_may_have_applied(attempt),
        // Before any request went out: a bad statement, no node to ask, no
        // connection to it, or the driver's own bookkeeping.
        ExecutionError::BadQuery(_)
        | ExecutionError::EmptyPlan
        | ExecutionError::PrepareError(_)
        | ExecutionError::ConnectionPoolError(_)
        | ExecutionError::UseKeyspaceError(_)
        | ExecutionError::SchemaAgreementError(_)
        | ExecutionError::MetadataError(_) => false,
        // A kind this driver version does not know yet: assume the worst.
        _ => true,
    }
}

fn attempt_may_have_applied(err: &RequestAttemptError) -> bool {
    match err {
        // Not sent: the request could not be encoded or given a stream.
        RequestAttemptError::SerializationError(_)
        | RequestAttemptError::CqlRequestSerialization(_)
        | RequestAttemptError::UnableToAllocStreamId
        | RequestAttemptError::RepreparedIdChanged { .. } => false,
        RequestAttemptError::DbError(db_error, _) => db_error_may_have_applied(db_error),
        // Sent, and the connection broke before the answer, or an answer
        // came that does not decode: the node may have applied it.
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::BodyExtensionsParseError(_)
        | RequestAttemptError::CqlResultParseError(_)
        | RequestAttemptError::CqlErrorParseError(_)
        | RequestAttemptError::UnexpectedResponse(_) => true,
        _ => true,
    }
}

fn db_error_may_have_applied(err: &DbError) -> bool {
    match err {
        // The coordinator refused the request before writing anything.
        DbError::SyntaxError
        | DbError::Invalid
        | DbError::AlreadyExists { .. }
        | DbError::FunctionFailure { .. }
        | DbError::AuthenticationError
        | DbError::Unauthorized
        | DbError::ConfigError
        | DbError::Unavailable { .. }
        | DbError::Overloaded
        | DbError::IsBootstrapping
        | DbError::TruncateError
        | DbError::Unprepared { .. }
        | DbError::ProtocolError
        | DbError::RateLimitReached { .. } => false,
        // Replicas were asked and not enough answered in time, or some
        // failed: others may hold the write (a lightweight transaction's
        // timeout is reported as one of these too).
        DbError::WriteTimeout { .. }
        | DbError::WriteFailure { .. }
        | DbError::ReadTimeout { .. }
        | DbError::ReadFailure { .. }
        | DbError::ServerError
        | DbError::Other(_) => true,
        _ => true,
    }
}

/// A `map_err` adapter for a write request: [`StoreError::OutcomeUnknown`]
/// if it may have been applied, else [`StoreError::Backend`].
///
/// `retried_after_timeout` says that the driver may retry the request after
/// an unknown outcome (an idempotent statement): its last attempt's refusal
/// then does not clear the earlier attempt, so every failure once a request
/// may have gone out is unknown.
pub(super) fn write_error(
    context: &str,
    retried_after_timeout: bool,
) -> impl Fn(ExecutionError) -> StoreError + '_ {
    move |err| {
        let unknown = may_have_applied(&err) || (retried_after_timeout && was_sent(&err));
        let text = format!("scylla: {context}: {err}");
        if unknown {
            StoreError::OutcomeUnknown { reason: text }
        } else {
            StoreError::Backend(text)
        }
    }
}

/// Keeps the first failure of a batch's concurrent requests, unless a later
/// one has an unknown outcome: then part of the batch may be written, and
/// that is what its caller must hear.
pub(super) fn keep_worst(failure: &mut Option<StoreError>, err: StoreError) {
    let known = !matches!(failure, Some(StoreError::OutcomeUnknown { .. }));
    if failure.is_none() || (known && matches!(err, StoreError::OutcomeUnknown { .. })) {
        *failure = Some(err);
    }
}

/// Whether any attempt of the request may have left the driver.
fn was_sent(err: &ExecutionError) -> bool {
    !matches!(
        err,
        ExecutionError::BadQuery(_) | ExecutionError::EmptyPlan | ExecutionError::PrepareError(_)
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use scylla::errors::{BrokenConnectionErrorKind, ConnectionPoolError, WriteType};
    use scylla::statement::Consistency;

    use super::*;

    fn check(err: ExecutionError, retried_after_timeout: bool, expected: &str) {
        let text = err.to_string();
        let outcome = match write_error("writing a batch", retried_after_timeout)(err) {
            StoreError::OutcomeUnknown { .. } => "unknown",
            StoreError::Backend(_) => "not written",
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            outcome, expected,
            "{text} (retried after a timeout: {retried_after_timeout})"
        );
    }

    fn db(err: DbError) -> ExecutionError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(err, "from the node".into()))
    }

    #[test]
    fn a_write_that_may_have_reached_a_node_has_an_unknown_outcome() {
        let write_timeout = || {
            db(DbError::WriteTimeout {
                consistency: Consistency::Quorum,
                received: 1,
                required: 2,
                write_type: WriteType::Cas,
            })
        };
        let broken = || {
            ExecutionError::LastAttemptError(RequestAttemptError::BrokenConnectionError(
                BrokenConnectionErrorKind::TooManyOrphanedStreamIds(9).into(),
            ))
        };
        let unavailable = || {
            db(DbError::Unavailable {
                consistency: Consistency::Quorum,
                required: 2,
                alive: 1,
            })
        };
        let no_connection =
            || ExecutionError::ConnectionPoolError(ConnectionPoolError::Initializing);
        let cases: Vec<(ExecutionError, bool, &str)> = vec![
            (
                ExecutionError::RequestTimeout(Duration::from_secs(5)),
                false,
                "unknown",
            ),
            (write_timeout(), false, "unknown"),
            (broken(), false, "unknown"),
            (db(DbError::ServerError), false, "unknown"),
            (no_connection(), false, "not written"),
            (ExecutionError::EmptyPlan, false, "not written"),
            (
                ExecutionError::LastAttemptError(RequestAttemptError::UnableToAllocStreamId),
                false,
                "not written",
            ),
            (unavailable(), false, "not written"),
            (db(DbError::Overloaded), false, "not written"),
            (db(DbError::Invalid), false, "not written"),
            // An idempotent batch may have been retried after a timeout.
            (unavailable(), true, "unknown"),
            (no_connection(), true, "unknown"),
            (ExecutionError::EmptyPlan, true, "not written"),
            (
                ExecutionError::RequestTimeout(Duration::from_secs(5)),
                true,
                "unknown",
            ),
        ];
        for (err, retried_after_timeout, expected) in cases {
            check(err, retried_after_timeout, expected);
        }
    }
}
