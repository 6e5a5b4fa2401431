//! SLA arithmetic: service level, ASA, AHT, abandonment, first-response time,
//! occupancy, longest wait and quantiles, with the definitions Genesys, Amazon
//! Connect and Twilio use. Pure functions over [`Session`] records and agent
//! state intervals; the operator-facing definitions are in `docs/sla.md`.
//!
//! Which sessions count, in one place:
//!
//! - a session belongs to the group of [`Session::sla_group`]: the group whose
//!   queue held it last before an agent first accepted it (never answered: the
//!   group holding it now). An overflow (a move before the answer) moves it;
//!   a transfer after the answer does not (the next group's queue counts an
//!   entry, [`SlaChange::QueueEntry`], not a contact);
//! - it **entered** the queue when `times.queued` is set; sessions that never
//!   queued (abandoned while routing) are ignored entirely;
//! - it was **answered** when `times.answered` is set, whatever happened after
//!   (a session answered, transferred and then abandoned counts once, as
//!   answered);
//! - it was **abandoned** when it is in [`SessionState::Abandoned`] and was
//!   never answered; a **short abandon** left sooner than the group's
//!   `short_abandon_secs` after queueing (strictly less; leaving exactly at the
//!   limit is a normal abandon);
//! - everything else that entered is **open** (still waiting): it counts in the
//!   abandonment-rate denominator only.
//!
//! Durations are `later - earlier` in milliseconds, floored at 0 so that a clock
//! step backwards cannot make a mean negative.
//!
//! The same definitions live: [`changes`] says what one step of a session
//! changes in its groups' counts, and the wallboard's [`SlaTally`] and the
//! Prometheus counters add those changes up, so that at any moment they give
//! what [`SlaReport::from_sessions`] gives over the same sessions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::channel::Channel;
use crate::group::SkillGroup;
use crate::ids::GroupId;
use crate::presence::Presence;
use crate::session::{Session, SessionState, SessionTimes};

/// SLA figures of one skill group: over all its channels and per channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaReport {
    /// The group the report is about.
    pub group: GroupId,
    /// The group's service-level target in percent, so a dashboard can colour
    /// [`SlaFigures::service_level`] without looking the group up.
    pub target_pct: f64,
    /// Every channel together; each contact is judged against its own
    /// channel's threshold, so an email answered in 20 minutes can be within.
    pub total: SlaFigures,
    /// The same figures per channel; only channels with at least one contact
    /// that entered the queue appear.
    pub by_channel: BTreeMap<Channel, SlaFigures>,
}

/// Counts and derived figures for one set of contacts. Ratios are fractions in
/// `0.0..=1.0`; durations are milliseconds. A figure whose denominator is empty
/// is `None` (JSON `null`), never NaN.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlaFigures {
    /// The service-level threshold these contacts were judged against; `None`
    /// in [`SlaReport::total`], where channels may differ.
    pub threshold_ms: Option<Millis>,
    /// Contacts that entered the queue (`times.queued` set).
    pub n_entered: u64,
    /// Contacts an agent accepted.
    pub n_answered: u64,
    /// Answered with `answered - queued <= threshold`.
    pub n_answered_within: u64,
    /// Left before an agent accepted, short abandons included.
    pub n_abandoned: u64,
    /// Abandoned sooner than `short_abandon_secs` after queueing; kept out of
    /// service level because the customer left before anyone could answer.
    pub n_short_abandoned: u64,
    /// Entered but neither answered nor abandoned yet.
    pub n_open: u64,
    /// Answered and closed: the contacts that have a handle time.
    pub n_handled: u64,
    /// `n_answered_within / (n_answered + n_abandoned - n_short_abandoned)`.
    pub service_level: Option<f64>,
    /// Average speed of answer: mean of `answered - queued` over answered contacts.
    pub asa_ms: Option<f64>,
    /// Average handle time: mean of `closed - answered` over handled contacts
    /// (talk, hold and wrap-up).
    pub aht_ms: Option<f64>,
    /// `n_abandoned / n_entered`.
    pub abandonment_rate: Option<f64>,
    /// Mean of `first_response - answered` over answered contacts with an agent
    /// message.
    pub first_response_mean_ms: Option<f64>,
    /// Nearest-rank median of the first-response times.
    pub first_response_p50_ms: Option<Millis>,
    /// Nearest-rank 90th percentile of the first-response times.
    pub first_response_p90_ms: Option<Millis>,
    /// The longest any of these contacts waited in queue: until the answer,
    /// or until it left for an abandoned one (open ones are still waiting
    /// and not counted).
    pub longest_wait_ms: Option<Millis>,
    /// Every first-response time, ascending, for other quantiles via
    /// [`quantile`]. Not serialised: a busy group has thousands.
    #[serde(skip)]
    pub first_response_ms: Vec<Millis>,
}

impl SlaReport {
    /// The report for `group` over `sessions`; sessions of other groups are
    /// ignored.
    pub fn from_sessions<'a>(
        group: &SkillGroup,
        sessions: impl IntoIterator<Item = &'a Session>,
    ) -> SlaReport {
        let short_abandon_ms = secs_to_ms(group.short_abandon_secs);
        let mut total = Tally::default();
        let mut by_channel: BTreeMap<Channel, Tally> = BTreeMap::new();
        for session in sessions {
            if session.sla_group() != Some(&group.id) {
                continue;
            }
            let threshold_ms = secs_to_ms(group.threshold_secs(&session.channel));
            let Some(contact) = Contact::classify(session, threshold_ms, short_abandon_ms) else {
                continue;
            };
            total.add(&contact);
            by_channel
                .entry(session.channel.clone())
                .or_insert_with(|| Tally {
                    threshold_ms: Some(threshold_ms),
                    ..Tally::default()
                })
                .add(&contact);
        }
        SlaReport {
            group: group.id.clone(),
            target_pct: group.sla_target_pct,
            total: total.finish(),
            by_channel: by_channel
                .into_iter()
                .map(|(channel, tally)| (channel, tally.finish()))
                .collect(),
        }
    }
}

/// Where one session stands against its group's thresholds: what the live
/// metrics count as it changes state (the report above counts the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    /// Answered: within the channel's threshold or not.
    pub answered_within: Option<bool>,
    /// Abandoned in queue: before the short-abandon threshold or not.
    pub abandoned_short: Option<bool>,
    /// Queued → answered.
    pub wait_ms: Option<Millis>,
    /// Answered → closed.
    pub handle_ms: Option<Millis>,
    /// Answered → the agent's first message.
    pub first_response_ms: Option<Millis>,
}

/// Running counts of one group's contacts, kept as events happen (the live
/// wallboard): the sum of the [`SlaChange`]s of the group, with the same
/// definitions as [`SlaFigures`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SlaTally {
    /// Contacts that came to count in the group (first queued here, or
    /// moved here before an answer).
    pub n_came: u64,
    /// Of those and of earlier ones, contacts that moved on to another
    /// group before an answer. [`SlaTally::n_entered`] is the difference.
    pub n_moved_out: u64,
    /// Entries into the group's queue, every one (the first queue, an
    /// overflow, a transfer, also of an answered contact): the queue's load,
    /// not its contacts.
    pub n_queue_entries: u64,
    /// Contacts an agent accepted.
    pub n_answered: u64,
    /// Answered within the channel's threshold.
    pub n_answered_within: u64,
    /// Left before an agent accepted, short abandons included.
    pub n_abandoned: u64,
    /// Abandoned before `short_abandon_secs`.
    pub n_short_abandoned: u64,
}

impl SlaTally {
    /// Adds one change of this group.
    pub fn apply(&mut self, change: &SlaChange) {
        match change {
            SlaChange::QueueEntry { .. } => self.n_queue_entries += 1,
            SlaChange::Entered { .. } => self.n_came += 1,
            SlaChange::MovedOut { .. } => self.n_moved_out += 1,
            SlaChange::Answered { within, .. } => {
                self.n_answered += 1;
                self.n_answered_within += u64::from(*within);
            }
            SlaChange::Abandoned { short, .. } => {
                self.n_abandoned += 1;
                self.n_short_abandoned += u64::from(*short);
            }
            SlaChange::Handled { .. } | SlaChange::FirstResponse { .. } => {}
        }
    }

    /// `n_answered_within / (n_answered + n_abandoned - n_short_abandoned)`;
    /// `None` before anything was answered or abandoned.
    pub fn service_level(&self) -> Option<f64> {
        ratio(
            self.n_answered_within as f64,
            self.n_answered + self.n_abandoned - self.n_short_abandoned,
        )
    }

    /// Contacts that count in the group ([`SlaFigures::n_entered`]):
    /// `n_came - n_moved_out`, as Prometheus computes it from its two
    /// counters. Counted since this process started, so a contact that
    /// entered before a restart (or on another node) and moves on after it
    /// is subtracted without having been added: floored at 0 here.
    pub fn n_entered(&self) -> u64 {
        self.n_came.saturating_sub(self.n_moved_out)
    }

    /// `n_abandoned / n_entered` ([`SlaFigures::abandonment_rate`]).
    pub fn abandonment_rate(&self) -> Option<f64> {
        ratio(self.n_abandoned as f64, self.n_entered())
    }
}

/// A group's [`SlaTally`]s minute by minute over the last hour: the
/// wallboard's service level over the last 15 and 60 minutes (not since
/// start) and its sparkline. Each change counts in the minute it was
/// counted live; minutes older than an hour are dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlaWindow {
    /// (minute since the Unix epoch, that minute's tally), oldest first.
    minutes: std::collections::VecDeque<(i64, SlaTally)>,
}

/// How far back an [`SlaWindow`] keeps its minutes.
pub const WINDOW_MINUTES: i64 = 60;
const MINUTE_MS: Millis = 60_000;

impl SlaWindow {
    /// Counts `change` in the minute of `now`.
    pub fn apply(&mut self, change: &SlaChange, now: Millis) {
        let minute = now.div_euclid(MINUTE_MS);
        match self.minutes.back_mut() {
            Some((last, tally)) if *last == minute => tally.apply(change),
            _ => {
                let mut tally = SlaTally::default();
                tally.apply(change);
                self.minutes.push_back((minute, tally));
            }
        }
        while self
            .minutes
            .front()
            .is_some_and(|(first, _)| *first <= minute - WINDOW_MINUTES)
        {
            self.minutes.pop_front();
        }
    }

    /// The sum over the last `minutes` minutes up to `now` (the minute of
    /// `now` included).
    pub fn over(&self, minutes: i64, now: Millis) -> SlaTally {
        let last = now.div_euclid(MINUTE_MS);
        self.span(last - minutes + 1, last)
    }

    /// The service level of each `step`-minute slot of the last hour up to
    /// `now`, oldest first (`WINDOW_MINUTES / step` points); `None` for a
    /// slot in which nothing was answered or abandoned.
    pub fn sparkline(&self, step: i64, now: Millis) -> Vec<Option<f64>> {
        let step = step.clamp(1, WINDOW_MINUTES);
        let last = now.div_euclid(MINUTE_MS);
        let n_slots = WINDOW_MINUTES / step;
        (0..n_slots)
            .rev()
            .map(|back| {
                let end = last - back * step;
                self.span(end - step + 1, end).service_level()
            })
            .collect()
    }

    /// The sum of the minutes `first..=last`.
    fn span(&self, first: i64, last: i64) -> SlaTally {
        let mut sum = SlaTally::default();
        for (_, tally) in self
            .minutes
            .iter()
            .filter(|(minute, _)| (first..=last).contains(minute))
        {
            sum.add(tally);
        }
        sum
    }
}

impl SlaTally {
    /// Adds another tally's counts.
    pub fn add(&mut self, other: &SlaTally) {
        self.n_came += other.n_came;
        self.n_moved_out += other.n_moved_out;
        self.n_queue_entries += other.n_queue_entries;
        self.n_answered += other.n_answered;
        self.n_answered_within += other.n_answered_within;
        self.n_abandoned += other.n_abandoned;
        self.n_short_abandoned += other.n_short_abandoned;
    }
}

/// One change to a group's figures, as a session moves: what the live
/// counters add up. Each names the group it counts in.
#[derive(Debug, Clone, PartialEq)]
pub enum SlaChange {
    /// The session entered `group`'s queue: any entry, also of a contact
    /// that counts elsewhere (a transfer after the answer).
    QueueEntry {
        /// The queue.
        group: GroupId,
    },
    /// The contact counts in `group` from now on: it queued for the first
    /// time, or moved here (an overflow) before being answered.
    Entered {
        /// The group it counts in now.
        group: GroupId,
    },
    /// The contact, unanswered, moved from `group` to another group: it no
    /// longer counts in `group`.
    MovedOut {
        /// The group it counted in until now.
        group: GroupId,
    },
    /// An agent first accepted the contact.
    Answered {
        /// The contact's group.
        group: GroupId,
        /// Within the channel's threshold.
        within: bool,
        /// `answered - queued`.
        wait_ms: Millis,
    },
    /// The customer left before any agent accepted.
    Abandoned {
        /// The contact's group.
        group: GroupId,
        /// Before `short_abandon_secs`.
        short: bool,
    },
    /// An answered contact was closed: its handle time, `closed - answered`.
    Handled {
        /// The contact's group.
        group: GroupId,
        /// `closed - answered`.
        handle_ms: Millis,
    },
    /// The agent's first message after the answer: `first_response - answered`.
    FirstResponse {
        /// The contact's group.
        group: GroupId,
        /// `first_response - answered`.
        ms: Millis,
    },
}

impl SlaChange {
    /// The group the change counts in.
    pub fn group(&self) -> &GroupId {
        match self {
            SlaChange::QueueEntry { group }
            | SlaChange::Entered { group }
            | SlaChange::MovedOut { group }
            | SlaChange::Answered { group, .. }
            | SlaChange::Abandoned { group, .. }
            | SlaChange::Handled { group, .. }
            | SlaChange::FirstResponse { group, .. } => group,
        }
    }
}

/// The part of a session the SLA figures read, as it was at one moment:
/// [`changes`] compares it with the session now.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPoint {
    /// [`Session::state`].
    pub state: SessionState,
    /// [`Session::group`].
    pub group: Option<GroupId>,
    /// [`Session::sla_group`]: the group the contact counts in.
    pub sla_group: Option<GroupId>,
    /// [`Session::times`].
    pub times: SessionTimes,
}

impl SlaPoint {
    /// `session` now.
    pub fn of(session: &Session) -> SlaPoint {
        SlaPoint {
            state: session.state,
            group: session.group.clone(),
            sla_group: session.sla_group().cloned(),
            times: session.times.clone(),
        }
    }

    /// Whether `session` is still where this point saw it: then
    /// [`changes`] has nothing to say (checked without cloning anything).
    pub fn is_at(&self, session: &Session) -> bool {
        self.state == session.state
            && self.times == session.times
            && self.group == session.group
            && self.sla_group.as_ref() == session.sla_group()
    }
}

/// What happened to `session` since `before`, as changes to its groups'
/// figures (`groups` looks a group's thresholds up; a group it does not
/// know counts with the defaults). The live side of [`SlaReport`]: summed
/// over a session's life, the changes give exactly what the report counts
/// for it.
pub fn changes<'g>(
    before: &SlaPoint,
    session: &Session,
    groups: impl Fn(&GroupId) -> Option<&'g SkillGroup>,
) -> Vec<SlaChange> {
    let mut changes = Vec::new();
    // Back in line after an offer lapsed or was refused is not a new entry.
    let was_in_line = matches!(before.state, SessionState::Queued | SessionState::Offered);
    let entered_queue =
        session.state == SessionState::Queued && (!was_in_line || before.group != session.group);
    if entered_queue && let Some(group) = &session.group {
        changes.push(SlaChange::QueueEntry {
            group: group.clone(),
        });
    }
    if before.sla_group.as_ref() != session.sla_group() {
        if let Some(group) = &before.sla_group {
            changes.push(SlaChange::MovedOut {
                group: group.clone(),
            });
        }
        if let Some(group) = session.sla_group() {
            changes.push(SlaChange::Entered {
                group: group.clone(),
            });
        }
    }
    let Some(group_id) = session.sla_group() else {
        return changes;
    };
    let default_group;
    let group = match groups(group_id) {
        Some(group) => group,
        None => {
            default_group = SkillGroup::new(group_id.as_str(), group_id.as_str());
            &default_group
        }
    };
    let Some(judged) = judge(session, group) else {
        return changes;
    };
    let group_id = group_id.clone();
    let was = &before.times;
    if was.answered.is_none()
        && let (Some(within), Some(wait_ms)) = (judged.answered_within, judged.wait_ms)
    {
        changes.push(SlaChange::Answered {
            group: group_id.clone(),
            within,
            wait_ms,
        });
    }
    if before.state != SessionState::Abandoned
        && let Some(short) = judged.abandoned_short
    {
        changes.push(SlaChange::Abandoned {
            group: group_id.clone(),
            short,
        });
    }
    if before.state != SessionState::Closed
        && let Some(handle_ms) = judged.handle_ms
    {
        changes.push(SlaChange::Handled {
            group: group_id.clone(),
            handle_ms,
        });
    }
    if was.first_response.is_none()
        && let Some(ms) = judged.first_response_ms
    {
        changes.push(SlaChange::FirstResponse {
            group: group_id,
            ms,
        });
    }
    changes
}

/// Judges `session` against `group`; `None` if it never entered a queue.
pub fn judge(session: &Session, group: &SkillGroup) -> Option<Judged> {
    let threshold_ms = secs_to_ms(group.threshold_secs(&session.channel));
    let short_abandon_ms = secs_to_ms(group.short_abandon_secs);
    let contact = Contact::classify(session, threshold_ms, short_abandon_ms)?;
    let (answered_within, abandoned_short) = match contact.outcome {
        Outcome::Answered { within } => (Some(within), None),
        Outcome::Abandoned { short } => (None, Some(short)),
        Outcome::Open => (None, None),
    };
    Some(Judged {
        answered_within,
        abandoned_short,
        wait_ms: contact.wait_ms,
        handle_ms: contact.handle_ms,
        first_response_ms: contact.first_response_ms,
    })
}

pub(crate) fn secs_to_ms(secs: u32) -> Millis {
    Millis::from(secs) * 1000
}

/// `later - earlier`, floored at 0.
pub(crate) fn elapsed(earlier: Millis, later: Millis) -> Millis {
    later.saturating_sub(earlier).max(0)
}

/// What one session contributes, already judged against its thresholds.
pub(crate) struct Contact {
    pub(crate) outcome: Outcome,
    /// `answered - queued`, for answered contacts.
    wait_ms: Option<Millis>,
    /// `closed - answered`, for answered contacts that are closed.
    handle_ms: Option<Millis>,
    /// `first_response - answered`.
    first_response_ms: Option<Millis>,
    /// How long it waited in queue: `wait_ms` when answered, `closed -
    /// queued` when abandoned with a closing time.
    queue_ms: Option<Millis>,
}

pub(crate) enum Outcome {
    Answered { within: bool },
    Abandoned { short: bool },
    Open,
}

impl Contact {
    /// `None` for a session that never entered a queue.
    pub(crate) fn classify(
        session: &Session,
        threshold_ms: Millis,
        short_abandon_ms: Millis,
    ) -> Option<Contact> {
        let times = &session.times;
        let queued = times.queued?;
        let mut contact = Contact {
            outcome: Outcome::Open,
            wait_ms: None,
            handle_ms: None,
            first_response_ms: None,
            queue_ms: None,
        };
        if let Some(answered) = times.answered {
            let wait_ms = elapsed(queued, answered);
            contact.outcome = Outcome::Answered {
                within: wait_ms <= threshold_ms,
            };
            contact.wait_ms = Some(wait_ms);
            contact.queue_ms = Some(wait_ms);
            if session.state == SessionState::Closed {
                contact.handle_ms = times.closed.map(|closed| elapsed(answered, closed));
            }
            contact.first_response_ms = times
                .first_response
                .map(|first_response| elapsed(answered, first_response));
        } else if session.state == SessionState::Abandoned {
            // A record without its closing time cannot prove the customer left
            // early, so it stays in the service-level denominator.
            let short = times
                .closed
                .is_some_and(|closed| elapsed(queued, closed) < short_abandon_ms);
            contact.outcome = Outcome::Abandoned { short };
            contact.queue_ms = times.closed.map(|closed| elapsed(queued, closed));
        }
        Some(contact)
    }
}

/// Running sums for one [`SlaFigures`].
#[derive(Default)]
pub(crate) struct Tally {
    threshold_ms: Option<Millis>,
    n_entered: u64,
    n_answered: u64,
    n_answered_within: u64,
    n_abandoned: u64,
    n_short_abandoned: u64,
    n_open: u64,
    total_wait_ms: i128,
    n_handled: u64,
    total_handle_ms: i128,
    first_response_ms: Vec<Millis>,
    longest_wait_ms: Option<Millis>,
}

impl Tally {
    /// An empty tally whose contacts are judged against `threshold_ms`
    /// (`None`: several thresholds, e.g. every channel together).
    pub(crate) fn with_threshold(threshold_ms: Option<Millis>) -> Tally {
        Tally {
            threshold_ms,
            ..Tally::default()
        }
    }

    pub(crate) fn add(&mut self, contact: &Contact) {
        self.n_entered += 1;
        match contact.outcome {
            Outcome::Answered { within } => {
                self.n_answered += 1;
                self.n_answered_within += u64::from(within);
            }
            Outcome::Abandoned { short } => {
                self.n_abandoned += 1;
                self.n_short_abandoned += u64::from(short);
            }
            Outcome::Open => self.n_open += 1,
        }
        if let Some(wait_ms) = contact.wait_ms {
            self.total_wait_ms += i128::from(wait_ms);
        }
        if let Some(handle_ms) = contact.handle_ms {
            self.n_handled += 1;
            self.total_handle_ms += i128::from(handle_ms);
        }
        self.first_response_ms.extend(contact.first_response_ms);
        self.longest_wait_ms = self.longest_wait_ms.max(contact.queue_ms);
    }

    pub(crate) fn finish(mut self) -> SlaFigures {
        self.first_response_ms.sort_unstable();
        let total_first_response_ms: i128 = self
            .first_response_ms
            .iter()
            .map(|&ms| i128::from(ms))
            .sum();
        let service_level_denominator = self.n_answered + self.n_abandoned - self.n_short_abandoned;
        SlaFigures {
            threshold_ms: self.threshold_ms,
            n_entered: self.n_entered,
            n_answered: self.n_answered,
            n_answered_within: self.n_answered_within,
            n_abandoned: self.n_abandoned,
            n_short_abandoned: self.n_short_abandoned,
            n_open: self.n_open,
            n_handled: self.n_handled,
            service_level: ratio(self.n_answered_within as f64, service_level_denominator),
            asa_ms: ratio(self.total_wait_ms as f64, self.n_answered),
            aht_ms: ratio(self.total_handle_ms as f64, self.n_handled),
            abandonment_rate: ratio(self.n_abandoned as f64, self.n_entered),
            first_response_mean_ms: ratio(
                total_first_response_ms as f64,
                self.first_response_ms.len() as u64,
            ),
            first_response_p50_ms: quantile_of_sorted(&self.first_response_ms, 0.5),
            first_response_p90_ms: quantile_of_sorted(&self.first_response_ms, 0.9),
            longest_wait_ms: self.longest_wait_ms,
            first_response_ms: self.first_response_ms,
        }
    }
}

/// `numerator / denominator`, or `None` when there is nothing to divide by.
pub(crate) fn ratio(numerator: f64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator / denominator as f64)
}

/// The nearest-rank quantile `q` (`0.0..=1.0`) of `durations`, which need not be
/// sorted: the smallest value with at least `q` of the values at or below it,
/// i.e. the value at 1-based rank `max(1, ⌈q·n⌉)` in ascending order. Always one
/// of the inputs, never interpolated. `None` for no values or `q` outside
/// `0.0..=1.0` (NaN included).
pub fn quantile(durations: &[Millis], q: f64) -> Option<Millis> {
    let rank = nearest_rank(durations.len(), q)?;
    let mut copy = durations.to_vec();
    let (_, value, _) = copy.select_nth_unstable(rank - 1);
    Some(*value)
}

pub(crate) fn quantile_of_sorted(sorted: &[Millis], q: f64) -> Option<Millis> {
    nearest_rank(sorted.len(), q).map(|rank| sorted[rank - 1])
}

/// The 1-based nearest rank of quantile `q` among `n` values.
fn nearest_rank(n: usize, q: f64) -> Option<usize> {
    if n == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    // q·n is inexact in binary (0.7 × 10 = 7.000000000000001); without the
    // tolerance p70 of ten values would take rank 8 instead of 7.
    let exact = q * n as f64;
    let rank = (exact - exact * 1e-12).ceil() as usize;
    Some(rank.clamp(1, n))
}

/// How long the longest-waiting contact has waited at `now`, given when each
/// contact still in queue started waiting (`times.queued`). `None` for an empty
/// queue; a start in the future (clock skew between nodes) counts as 0.
pub fn longest_wait(queued_since: impl Iterator<Item = Millis>, now: Millis) -> Option<Millis> {
    queued_since.map(|since| elapsed(since, now)).max()
}

/// What an agent was doing during an [`AgentInterval`], for occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentActivity {
    /// Handling at least one contact (talk, chat, hold).
    OnContact,
    /// Logged in, ready and without contacts: capacity the queue could use.
    AvailableIdle,
    /// Logged in but not taking contacts (break, meeting, training).
    Away,
    /// After-contact work: notes, dispositions.
    WrapUp,
    /// Logged out.
    Offline,
}

impl AgentActivity {
    /// What an agent is doing now, for occupancy: holding a contact is on
    /// contact whatever the presence says; otherwise the presence decides
    /// (not responding counts as away: logged in, not taking contacts).
    pub fn of(presence: &Presence, holds_contacts: bool) -> AgentActivity {
        if holds_contacts {
            return AgentActivity::OnContact;
        }
        match presence {
            Presence::Available => AgentActivity::AvailableIdle,
            Presence::WrapUp { .. } => AgentActivity::WrapUp,
            Presence::Away { .. } | Presence::NotResponding => AgentActivity::Away,
            Presence::Offline => AgentActivity::Offline,
        }
    }

    /// Occupancy's side of the activity: `Some(true)` on-contact time (wrap-up
    /// included), `Some(false)` available idle time, `None` not counted.
    pub fn occupied(self) -> Option<bool> {
        match self {
            AgentActivity::OnContact | AgentActivity::WrapUp => Some(true),
            AgentActivity::AvailableIdle => Some(false),
            AgentActivity::Away | AgentActivity::Offline => None,
        }
    }
}

/// One stretch of time an agent spent in one activity, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInterval {
    /// The activity.
    pub state: AgentActivity,
    /// When it began.
    pub start: Millis,
    /// When it ended; an interval with `end <= start` is empty.
    pub end: Millis,
}

/// Occupancy: the share of staffed, contact-ready time spent on contacts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Occupancy {
    /// Time in [`AgentActivity::OnContact`] plus [`AgentActivity::WrapUp`]:
    /// wrap-up is work caused by a contact, as Genesys and Connect count it.
    pub on_contact_ms: Millis,
    /// Time in [`AgentActivity::AvailableIdle`].
    pub available_idle_ms: Millis,
    /// `on_contact_ms / (on_contact_ms + available_idle_ms)`; `None` when both
    /// are 0 (the agents were only away or offline). Away and offline time
    /// count nowhere: an agent on break is neither busy nor available.
    pub occupancy: Option<f64>,
}

impl Occupancy {
    /// Occupancy over every interval given. The intervals must not overlap
    /// for one agent (an agent is in one state at a time); intervals of
    /// several agents may be mixed to get a group's occupancy.
    pub fn from_intervals<'a>(intervals: impl IntoIterator<Item = &'a AgentInterval>) -> Occupancy {
        Occupancy::within(intervals, Millis::MIN, Millis::MAX)
    }

    /// Occupancy over the window `[from, to)`: each interval is clipped to
    /// the window first, so a dashboard's "last 15 minutes" counts only the
    /// part of a long idle stretch that lies inside it.
    pub fn within<'a>(
        intervals: impl IntoIterator<Item = &'a AgentInterval>,
        from: Millis,
        to: Millis,
    ) -> Occupancy {
        let mut occupancy = Occupancy::default();
        for interval in intervals {
            let length_ms = elapsed(interval.start.max(from), interval.end.min(to));
            match interval.state.occupied() {
                Some(true) => occupancy.on_contact_ms += length_ms,
                Some(false) => occupancy.available_idle_ms += length_ms,
                None => {}
            }
        }
        let staffed_ms = occupancy.on_contact_ms + occupancy.available_idle_ms;
        occupancy.occupancy = ratio(occupancy.on_contact_ms as f64, staffed_ms.max(0) as u64);
        occupancy
    }
}

pub mod report;

#[cfg(test)]
mod tests;
