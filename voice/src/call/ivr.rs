//! The IVR menu: the answered caller hears the prompt until they have keyed
//! their choice (RFC 4733 telephone-events from the media task, or SIP INFO
//! on the caller's leg), then the call is queued with the digits.

use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver};
use rsipstack::sip::StatusCode;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};
use tracing::debug;

use super::info::{InfoBody, info_body};
use super::task::{answer_caller_offer, respond};
use crate::media::{CallMedia, Dtmf, LocalMedia, LocalSession};
use crate::sip::IvrConfig;

/// How the menu ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Menu {
    /// The keys pressed (without the terminator); `""` when the caller
    /// keyed nothing before the first-digit timeout.
    Keyed(String),
    /// The caller's leg ended during the menu.
    HungUp,
}

/// What the menu needs of the call.
pub(super) struct MenuCall<'a> {
    pub(super) events: &'a mut DialogStateReceiver,
    pub(super) dtmf: &'a mut mpsc::UnboundedReceiver<Dtmf>,
    pub(super) sdp: &'a mut LocalSession,
    pub(super) local: &'a mut LocalMedia,
    pub(super) media: &'a CallMedia,
    /// Names the call in logs.
    pub(super) name: String,
}

/// Collects the caller's choice while the prompt plays.
pub(super) async fn collect(config: &IvrConfig, call: MenuCall<'_>) -> Menu {
    let MenuCall {
        events,
        dtmf,
        sdp,
        local,
        media,
        name,
    } = call;
    let mut keys = Keys::new(config);
    let mut deadline = Instant::now() + Duration::from_millis(config.first_digit_timeout_ms);
    loop {
        let keyed = tokio::select! {
            () = tokio::time::sleep_until(deadline) => return Menu::Keyed(keys.digits),
            Some(dtmf) = dtmf.recv() => dtmf.digit.to_string(),
            state = events.recv() => match state {
                None | Some(DialogState::Terminated(..)) => return Menu::HungUp,
                Some(DialogState::Info(_, request, handle)) => match info_body(&request) {
                    InfoBody::Digits(digits) => {
                        respond(&handle, StatusCode::OK, None).await;
                        digits
                    }
                    InfoBody::Empty => {
                        respond(&handle, StatusCode::OK, None).await;
                        continue;
                    }
                    InfoBody::Unsupported(_) => {
                        respond(&handle, StatusCode::UnsupportedMediaType, None).await;
                        continue;
                    }
                    InfoBody::Bad(_) => {
                        respond(&handle, StatusCode::BadRequest, None).await;
                        continue;
                    }
                },
                Some(DialogState::Updated(_, request, handle)) => {
                    answer_caller_offer(name.clone(), sdp, local, media, &request, handle).await;
                    continue;
                }
                Some(DialogState::Options(_, _, handle)) => {
                    respond(&handle, StatusCode::OK, None).await;
                    continue;
                }
                Some(other) => {
                    debug!(call = %name, state = %other, "caller leg during the menu");
                    continue;
                }
            },
        };
        debug!(call = %name, %keyed, "menu key");
        for key in keyed.chars() {
            if keys.press(key) {
                return Menu::Keyed(keys.digits);
            }
        }
        deadline = Instant::now() + Duration::from_millis(config.inter_digit_timeout_ms);
    }
}

/// The digits keyed so far and when the menu is complete.
struct Keys {
    digits: String,
    max_digits: usize,
    terminator: Option<char>,
}

impl Keys {
    fn new(config: &IvrConfig) -> Keys {
        Keys {
            digits: String::new(),
            max_digits: config.max_digits,
            terminator: config.terminator.chars().next(),
        }
    }

    /// Takes one key; `true` when the menu is complete.
    fn press(&mut self, key: char) -> bool {
        if Some(key) == self.terminator {
            return true;
        }
        self.digits.push(key);
        self.digits.len() >= self.max_digits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(config: &IvrConfig, keys: &str) -> (String, bool) {
        let mut state = Keys::new(config);
        let mut done = false;
        for key in keys.chars() {
            if state.press(key) {
                done = true;
                break;
            }
        }
        (state.digits, done)
    }

    #[test]
    fn the_menu_ends_at_max_digits_or_the_terminator() {
        let one = IvrConfig::default();
        assert_eq!(keyed(&one, "27"), ("2".into(), true));
        assert_eq!(keyed(&one, "#"), ("".into(), true));
        let pin = IvrConfig {
            max_digits: 4,
            ..IvrConfig::default()
        };
        assert_eq!(keyed(&pin, "12"), ("12".into(), false));
        assert_eq!(keyed(&pin, "12#5"), ("12".into(), true));
        assert_eq!(keyed(&pin, "1234"), ("1234".into(), true));
        let no_terminator = IvrConfig {
            max_digits: 2,
            terminator: String::new(),
            ..IvrConfig::default()
        };
        assert_eq!(keyed(&no_terminator, "#*"), ("#*".into(), true));
    }
}
