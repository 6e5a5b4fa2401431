//! The contact-center figures of DESIGN §7, counted as sessions change
//! state, through the `metrics` facade (the gateway installs the Prometheus
//! recorder; without one these calls cost next to nothing). Names and
//! labels are listed in docs/metrics.md.

use engine::ids::GroupId;
use engine::session::Session;
use engine::sla::{SlaTally, judge};
use metrics::{counter, histogram};

use crate::event::{Event, EventKind};
use crate::shared::Shared;

/// Counts what a durable event of `session` means for the SLA figures of
/// its group.
pub fn record_event(shared: &Shared, session: &Session, event: &Event) {
    let kind = &event.kind;
    if let EventKind::Message {
        sender, channel, ..
    } = kind
    {
        let direction = match sender {
            engine::message::Sender::Customer => "in",
            _ => "out",
        };
        counter!("switchboard_messages_total", "direction" => direction, "channel" => channel.to_string())
            .increment(1);
    }
    let Some(group_id) = session.group.as_ref() else {
        return;
    };
    let group_label = group_id.to_string();
    let channel_label = session.channel.to_string();
    let labels = [("group", group_label), ("channel", channel_label)];
    if let EventKind::Queued { .. } = kind {
        counter!("switchboard_contacts_entered_total", &labels).increment(1);
        tally(shared, group_id, SlaTally::entered);
        return;
    }
    let Some(group) = shared.groups.get(group_id) else {
        return;
    };
    let Some(judged) = judge(session, group) else {
        return;
    };
    if matches!(kind, EventKind::Assigned { .. } | EventKind::Abandoned) {
        tally(shared, group_id, |tally| tally.add(&judged));
    }
    match kind {
        EventKind::Assigned { .. } => {
            counter!("switchboard_contacts_answered_total", &labels).increment(1);
            if judged.answered_within == Some(true) {
                counter!(
                    "switchboard_contacts_answered_within_threshold_total",
                    &labels
                )
                .increment(1);
            }
            if let Some(wait_ms) = judged.wait_ms {
                histogram!("switchboard_time_to_answer_seconds", &labels)
                    .record(wait_ms as f64 / 1000.0);
            }
        }
        EventKind::Abandoned => match judged.abandoned_short {
            Some(true) => {
                counter!("switchboard_contacts_short_abandoned_total", &labels).increment(1)
            }
            Some(false) => counter!("switchboard_contacts_abandoned_total", &labels).increment(1),
            None => {}
        },
        EventKind::Closed { .. } => {
            if let Some(handle_ms) = judged.handle_ms {
                histogram!("switchboard_handle_time_seconds", &labels)
                    .record(handle_ms as f64 / 1000.0);
            }
        }
        _ => {}
    }
}

/// The agent's first message after the answer (counted when it is made).
pub fn record_first_response(shared: &Shared, session: &Session) {
    let Some(group) = session.group.as_ref().and_then(|id| shared.groups.get(id)) else {
        return;
    };
    if let Some(first_ms) = judge(session, group).and_then(|judged| judged.first_response_ms) {
        let labels = [
            ("group", group.id.to_string()),
            ("channel", session.channel.to_string()),
        ];
        histogram!("switchboard_first_response_seconds", &labels).record(first_ms as f64 / 1000.0);
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
