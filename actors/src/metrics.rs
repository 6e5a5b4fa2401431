//! The contact-center figures of DESIGN §7, counted as sessions change
//! state, through the `metrics` facade (the gateway installs the Prometheus
//! recorder; without one these calls cost next to nothing). Names and
//! labels are listed in docs/metrics.md.

use engine::channel::Channel;
use engine::ids::GroupId;
use engine::sla::{SlaChange, SlaTally};
use metrics::{counter, histogram};

use crate::event::{Event, EventKind};
use crate::shared::Shared;

/// Counts a durable event of `session`: messages by direction and channel.
/// (Its SLA figures are counted by [`record_sla`].)
pub fn record_event(event: &Event, channel: &Channel) {
    match &event.kind {
        EventKind::Message {
            sender, channel, ..
        } => {
            let direction = match sender {
                engine::message::Sender::Customer => "in",
                _ => "out",
            };
            counter!("switchboard_messages_total", "direction" => direction, "channel" => channel.to_string())
                .increment(1);
        }
        EventKind::ResponseBreached { kind, group, .. } => {
            let group = group.as_ref().map_or("", |group| group.as_str());
            counter!(
                "switchboard_response_breaches_total",
                "group" => group.to_owned(),
                "channel" => channel.to_string(),
                "kind" => kind.as_str()
            )
            .increment(1);
        }
        _ => {}
    }
}

/// Counts what a session's step changed in its groups' SLA figures, once
/// the event that made it is durable: the Prometheus counters and the
/// wallboard's tallies add up the same [`SlaChange`]s (docs/metrics.md,
/// docs/sla.md).
pub fn record_sla(shared: &Shared, channel: &Channel, changes: &[SlaChange]) {
    for change in changes {
        let labels = [
            ("group", change.group().to_string()),
            ("channel", channel.to_string()),
        ];
        match change {
            SlaChange::QueueEntry { .. } => {
                counter!("switchboard_queue_entries_total", &labels).increment(1)
            }
            SlaChange::Entered { .. } => {
                counter!("switchboard_contacts_entered_total", &labels).increment(1)
            }
            SlaChange::MovedOut { .. } => {
                counter!("switchboard_contacts_moved_out_total", &labels).increment(1)
            }
            SlaChange::Answered {
                within, wait_ms, ..
            } => {
                counter!("switchboard_contacts_answered_total", &labels).increment(1);
                if *within {
                    counter!(
                        "switchboard_contacts_answered_within_threshold_total",
                        &labels
                    )
                    .increment(1);
                }
                histogram!("switchboard_time_to_answer_seconds", &labels)
                    .record(*wait_ms as f64 / 1000.0);
            }
            SlaChange::Abandoned { short: true, .. } => {
                counter!("switchboard_contacts_short_abandoned_total", &labels).increment(1)
            }
            SlaChange::Abandoned { short: false, .. } => {
                counter!("switchboard_contacts_abandoned_total", &labels).increment(1)
            }
            SlaChange::Handled { handle_ms, .. } => {
                histogram!("switchboard_handle_time_seconds", &labels)
                    .record(*handle_ms as f64 / 1000.0)
            }
            SlaChange::FirstResponse { ms, .. } => {
                histogram!("switchboard_first_response_seconds", &labels)
                    .record(*ms as f64 / 1000.0)
            }
        }
        tally(shared, change.group(), |tally| tally.apply(change));
        let now = crate::clock::now();
        let mut windows = shared.sla_windows.lock().expect("sla window lock");
        match windows.get_mut(change.group()) {
            Some(window) => window.apply(change, now),
            None => windows
                .entry(change.group().clone())
                .or_default()
                .apply(change, now),
        }
    }
}

/// Updates the wallboard's running counts of `group`.
fn tally(shared: &Shared, group: &GroupId, update: impl FnOnce(&mut SlaTally)) {
    let mut tallies = shared.sla.lock().expect("sla tally lock");
    match tallies.get_mut(group) {
        Some(tally) => update(tally),
        None => update(tallies.entry(group.clone()).or_default()),
    }
}
