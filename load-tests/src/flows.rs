//! What the simulated customers do in each chat scenario. Each function is
//! one customer from connect to goodbye; the worker runs many at once.

use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;

use crate::customer::{Customer, Seen};
use crate::rng::Rng;
use crate::stats::{count, hist};

/// How long set-up steps (an answer, a reply) may take before they count as errors.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Connects, opens a session with one message, and waits until an agent has
/// taken it and answered that message: a customer ready for steady chat.
pub async fn open_and_get_answered(customer: &mut Customer) -> Result<()> {
    customer.connect(hist::CONNECT).await?;
    customer.send_message().await?;
    customer
        .until("an agent's answer", SETUP_TIMEOUT, |c| {
            c.assigned && c.settled()
        })
        .await
}

/// Steady chat: a message every `interval` (first one at a random phase)
/// from `start` until `end`, then waits up to `drain` for every ack and reply.
/// A customer whose socket fails, while `failover` names more than one
/// node, goes on through another node ([`Customer::fail_over`]).
pub async fn steady(
    customer: &mut Customer,
    schedule: Schedule,
    failover: &Failover,
    rng: &mut Rng,
) -> Result<()> {
    let Schedule {
        start,
        end,
        interval,
        drain,
    } = schedule;
    let mut next_send = start + interval.mul_f64(rng.unit());
    // Until `end`: send on schedule (no more once the next send falls
    // after it) and read, going on through another node if this one dies.
    loop {
        let sending = next_send < end;
        if !sending && Instant::now() >= end {
            break;
        }
        let result = tokio::select! {
            _ = tokio::time::sleep_until(end), if !sending => break,
            _ = tokio::time::sleep_until(next_send), if sending => {
                next_send += interval;
                // Behind schedule (a stalled process): skip, do not burst.
                let now = Instant::now();
                if next_send < now {
                    next_send = now + interval;
                }
                customer.send_message().await.map(|_| ())
            }
            seen = customer.next() => match seen {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(anyhow::anyhow!("the server closed the socket during the run")),
                Err(err) => Err(err),
            }
        };
        if let Err(err) = result {
            if customer.connected() || !failover.possible() {
                return Err(err);
            }
            customer.fail_over(&failover.nodes, failover.spread).await?;
        }
    }
    settle_through(customer, drain, failover).await;
    customer.close().await;
    Ok(())
}

/// [`settle`], going on through another node if this one dies meanwhile.
async fn settle_through(customer: &mut Customer, drain: Duration, failover: &Failover) {
    let deadline = Instant::now() + drain;
    while !customer.settled() {
        match tokio::time::timeout_at(deadline, customer.next()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(_) if !customer.connected() && failover.possible() => {
                if let Err(err) = customer.fail_over(&failover.nodes, failover.spread).await {
                    customer.stats.error(format!("drain: {}", short(&err)));
                    break;
                }
            }
            // Closed or failed with nowhere to go, or the drain is over.
            _ => break,
        }
    }
    settle(customer, Duration::ZERO).await;
}

/// When a steady-chat customer sends.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    /// No message is sent from here on.
    pub end: Instant,
    pub interval: Duration,
    /// After `end`, how long to wait for every ack and reply.
    pub drain: Duration,
}

/// Where a client goes when its node dies.
#[derive(Debug, Clone, Default)]
pub struct Failover {
    /// Every node of the run (one: nowhere to go).
    pub nodes: Vec<std::net::SocketAddr>,
    /// Spreads the clients of a dead node over the others.
    pub spread: usize,
}

impl Failover {
    pub fn possible(&self) -> bool {
        self.nodes.len() > 1
    }
}

/// Waits up to `drain` for every ack and reply; what never came is counted.
pub async fn settle(customer: &mut Customer, drain: Duration) {
    if let Err(err) = customer
        .until("acks and replies", drain, Customer::settled)
        .await
    {
        let (unacked, unanswered) = customer.unsettled();
        if std::env::var_os("LOADGEN_DEBUG").is_some() {
            eprintln!(
                "customer {} (session {:?}): {unacked} unacked, {unanswered} unanswered: {:?}",
                customer.tag, customer.session, customer.outstanding
            );
        }
        customer.stats.add("unacked_messages", unacked as i64);
        customer.stats.add("unanswered_messages", unanswered as i64);
        customer.stats.error(format!("drain: {}", short(&err)));
    }
}

/// Resume storm: `rounds` times, send a message and drop the connection at
/// once; reconnect with `last_seq`, resend what has no ack, and wait for the
/// ack and the agent's reply. Every reply must come exactly once.
pub async fn resume(
    customer: &mut Customer,
    rounds: u32,
    drain: Duration,
    rng: &mut Rng,
) -> Result<()> {
    for _ in 0..rounds {
        customer.send_message().await?;
        customer.drop_connection();
        // Spread the returns a little, as real clients back off with jitter.
        tokio::time::sleep(Duration::from_millis(50).mul_f64(rng.unit())).await;
        customer.connect(hist::RESUME).await?;
        customer.stats.add(count::RESUMED, 1);
        customer.resend_unacked().await?;
        customer
            .until("the resumed message's reply", SETUP_TIMEOUT, |c| {
                c.settled()
            })
            .await?;
    }
    settle(customer, drain).await;
    customer.close().await;
    Ok(())
}

/// Contact-center day parameters for one customer.
#[derive(Debug, Clone, Copy)]
pub struct Visit {
    /// Leaves if nobody answers within this.
    pub patience: Duration,
    /// Talks this long once answered, then leaves.
    pub handle: Duration,
    /// Pause between a reply and the next message.
    pub talk_interval: Duration,
}

/// One contact-center-day customer: arrives, writes, waits (or abandons),
/// talks message by message (each answered before the next) for the handle
/// time, then leaves.
pub async fn visit(customer: &mut Customer, visit: Visit) -> Result<()> {
    customer.stats.add(count::ARRIVED, 1);
    customer.connect(hist::CONNECT).await?;
    customer.send_message().await?;
    let give_up_at = Instant::now() + visit.patience;
    while !customer.assigned {
        tokio::select! {
            _ = tokio::time::sleep_until(give_up_at) => break,
            seen = customer.next() => {
                if seen?.is_none() {
                    anyhow::bail!("the server closed the socket while waiting");
                }
            }
        }
    }
    if customer.assigned {
        let leave_at = Instant::now() + visit.handle;
        loop {
            customer
                .until("the agent's reply", SETUP_TIMEOUT, Customer::settled)
                .await?;
            if Instant::now() >= leave_at {
                break;
            }
            tokio::time::sleep(visit.talk_interval).await;
            customer.send_message().await?;
        }
    } else {
        // Still waiting: wait for the first message's ack so the leave names the session.
        customer
            .until("the ack of the first message", SETUP_TIMEOUT, |c| {
                c.session.is_some()
            })
            .await?;
    }
    customer.leave().await?;
    // An answer racing our leave makes it `closed` instead of `abandoned`.
    loop {
        match customer.next().await? {
            Some(Seen::Ended) | None => break,
            Some(_) => {}
        }
    }
    customer.close().await;
    Ok(())
}

/// The first line of an error chain, for grouping errors by kind.
pub fn short(err: &anyhow::Error) -> String {
    let text = err.to_string();
    text.chars().take(120).collect()
}
