//! The StoreWriter actor: group commit for every session's writes.
//!
//! Writes that arrive while a commit is in flight are gathered and committed
//! together in one `Store::write` call, so under load there is one store
//! round-trip per batch, not per message. Completions run in arrival order.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster_derive::RactorMessage;
use store::{Store, StoreError, WriteOp};
use tracing::warn;

/// Called once the write is durable (or failed).
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Messages of the StoreWriter.
#[derive(RactorMessage)]
pub enum StoreWriterMessage {
    /// Make `ops` durable, then call `done`. `ops` may be empty: a barrier
    /// that completes once everything sent before it is durable.
    Write {
        /// The operations, written atomically.
        ops: Vec<WriteOp>,
        /// What to do afterwards.
        done: Completion,
    },
    /// The in-flight commit finished.
    Committed {
        /// The requests it carried, with the outcome of each.
        completions: Vec<(Completion, Result<(), StoreError>)>,
    },
}

/// Group commit over a [`Store`].
pub struct StoreWriter;

/// Arguments of the StoreWriter.
pub struct StoreWriterArgs {
    /// Where writes go.
    pub store: Arc<dyn Store>,
    /// Most operations in one commit.
    pub max_batch_ops: usize,
}

/// The StoreWriter's state.
pub struct StoreWriterState {
    store: Arc<dyn Store>,
    max_batch_ops: usize,
    pending: Vec<(Vec<WriteOp>, Completion)>,
    in_flight: bool,
}

impl Actor for StoreWriter {
    type Msg = StoreWriterMessage;
    type State = StoreWriterState;
    type Arguments = StoreWriterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: StoreWriterArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(StoreWriterState {
            store: args.store,
            max_batch_ops: args.max_batch_ops.max(1),
            pending: Vec::new(),
            in_flight: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StoreWriterMessage::Write { ops, done } => state.pending.push((ops, done)),
            StoreWriterMessage::Committed { completions } => {
                state.in_flight = false;
                for (done, result) in completions {
                    done(result);
                }
            }
        }
        if !state.in_flight && !state.pending.is_empty() {
            state.in_flight = true;
            let batch = take_batch(&mut state.pending, state.max_batch_ops);
            let store = state.store.clone();
            tokio::spawn(async move {
                let completions = commit(store.as_ref(), batch).await;
                // The writer stops only at shutdown, after its last commit.
                let _ = myself.cast(StoreWriterMessage::Committed { completions });
            });
        }
        Ok(())
    }
}

/// Takes requests from the front of `pending` up to about `max_ops` operations
/// (always at least one request).
fn take_batch(
    pending: &mut Vec<(Vec<WriteOp>, Completion)>,
    max_ops: usize,
) -> Vec<(Vec<WriteOp>, Completion)> {
    let mut n_ops = 0;
    let mut n_requests = 0;
    for (ops, _) in pending.iter() {
        if n_requests > 0 && n_ops + ops.len() > max_ops {
            break;
        }
        n_ops += ops.len();
        n_requests += 1;
    }
    pending.drain(..n_requests).collect()
}

/// Commits the whole batch at once; if that fails, each request alone, so one
/// bad request (a duplicate sequence number) fails only itself.
async fn commit(
    store: &dyn Store,
    batch: Vec<(Vec<WriteOp>, Completion)>,
) -> Vec<(Completion, Result<(), StoreError>)> {
    let mut all = Vec::with_capacity(batch.iter().map(|(ops, _)| ops.len()).sum());
    let mut requests = Vec::with_capacity(batch.len());
    for (ops, done) in batch {
        let start = all.len();
        all.extend(ops);
        requests.push((start..all.len(), done));
    }
    if all.is_empty() {
        return requests
            .into_iter()
            .map(|(_, done)| (done, Ok(())))
            .collect();
    }
    let started = std::time::Instant::now();
    let written = store.write(&all).await;
    metrics::histogram!("switchboard_store_commit_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("switchboard_store_batch_ops").record(all.len() as f64);
    if written.is_err() {
        metrics::counter!("switchboard_store_commit_errors_total").increment(1);
    }
    match written {
        Ok(()) => requests
            .into_iter()
            .map(|(_, done)| (done, Ok(())))
            .collect(),
        Err(err) if requests.len() == 1 => requests
            .into_iter()
            .map(|(_, done)| (done, Err(err.clone())))
            .collect(),
        Err(err) => {
            warn!(error = %err, n_requests = requests.len(), "group commit failed; retrying requests one by one");
            let mut completions = Vec::with_capacity(requests.len());
            for (range, done) in requests {
                let result = if range.is_empty() {
                    Ok(())
                } else {
                    store.write(&all[range]).await
                };
                completions.push((done, result));
            }
            completions
        }
    }
}

/// Sends `ops` and waits until they are durable. A writer that is gone
/// before taking them is [`StoreError::Closed`] (nothing stored); one that
/// stopped after taking them without answering (shutdown mid-commit) is
/// [`StoreError::OutcomeUnknown`]: its commit may have gone through.
pub async fn write_and_wait(
    writer: &ActorRef<StoreWriterMessage>,
    ops: Vec<WriteOp>,
) -> Result<(), StoreError> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let done: Completion = Box::new(move |result| {
        // The waiter may have given up; then nobody needs the result.
        let _ = sender.send(result);
    });
    writer
        .cast(StoreWriterMessage::Write { ops, done })
        .map_err(|_| StoreError::Closed)?;
    receiver.await.map_err(|_| StoreError::OutcomeUnknown {
        reason: "the store writer stopped before answering".into(),
    })?
}
