//! Channels: where a contact comes from.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::EngineError;

/// A contact channel. Built-in channels have variants; third-party channels
/// (LINE, WhatsApp, a company's own app) are named custom channels that must be
/// declared in a [`ChannelRegistry`] before they are accepted.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Web chat widget.
    Web,
    /// The company's mobile app.
    App,
    /// Voice over SIP.
    Phone,
    /// WeChat official account.
    Wechat,
    /// QQ.
    Qq,
    /// SMS.
    Sms,
    /// Email.
    Email,
    /// A named custom channel.
    Custom(Arc<str>),
}

impl Channel {
    /// Every built-in channel, in a stable order.
    pub const BUILT_IN: [Channel; 7] = [
        Channel::Web,
        Channel::App,
        Channel::Phone,
        Channel::Wechat,
        Channel::Qq,
        Channel::Sms,
        Channel::Email,
    ];

    /// The wire name (`"wechat"`).
    pub fn as_str(&self) -> &str {
        match self {
            Channel::Web => "web",
            Channel::App => "app",
            Channel::Phone => "phone",
            Channel::Wechat => "wechat",
            Channel::Qq => "qq",
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Custom(name) => name,
        }
    }

    /// A voice channel: real-time, one at a time, blocks chats by default.
    pub fn is_voice(&self) -> bool {
        matches!(self, Channel::Phone)
    }

    /// Parses a channel name. Unknown but well-formed names become
    /// [`Channel::Custom`]; check them against a [`ChannelRegistry`].
    pub fn parse(name: &str) -> Result<Channel, EngineError> {
        let built_in = Channel::BUILT_IN.iter().find(|c| c.as_str() == name);
        if let Some(channel) = built_in {
            return Ok(channel.clone());
        }
        let valid = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            Ok(Channel::Custom(Arc::from(name)))
        } else {
            Err(EngineError::InvalidChannelName(name.to_owned()))
        }
    }
}

impl FromStr for Channel {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::parse(s)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Channel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Channel::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// The channels this deployment accepts: every built-in one plus the declared
/// custom channels.
#[derive(Debug, Clone, Default)]
pub struct ChannelRegistry {
    custom: BTreeSet<Arc<str>>,
}

impl ChannelRegistry {
    /// A registry with the built-in channels and the given custom ones.
    pub fn new<I, S>(custom: I) -> Result<Self, EngineError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut registry = ChannelRegistry::default();
        for name in custom {
            match Channel::parse(name.as_ref())? {
                Channel::Custom(name) => {
                    registry.custom.insert(name);
                }
                built_in => {
                    return Err(EngineError::Invalid {
                        field: "channels.custom",
                        reason: format!("`{built_in}` is a built-in channel"),
                    });
                }
            }
        }
        Ok(registry)
    }

    /// Accepts built-in channels and declared custom ones.
    pub fn check(&self, channel: &Channel) -> Result<(), EngineError> {
        match channel {
            Channel::Custom(name) if !self.custom.contains(name) => {
                Err(EngineError::UnknownChannel(name.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Parses a name and checks it in one step.
    pub fn resolve(&self, name: &str) -> Result<Channel, EngineError> {
        let channel = Channel::parse(name)?;
        self.check(&channel)?;
        Ok(channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, expected: Result<&str, &str>) {
        let registry = ChannelRegistry::new(["line", "whatsapp"]).unwrap();
        let got = registry
            .resolve(name)
            .map(|c| c.to_string())
            .map_err(|e| e.to_string());
        assert_eq!(
            got,
            expected.map(str::to_owned).map_err(str::to_owned),
            "resolving {name:?}"
        );
    }

    #[test]
    fn channel_names() {
        check("web", Ok("web"));
        check("wechat", Ok("wechat"));
        check("phone", Ok("phone"));
        check("line", Ok("line"));
        check("fax", Err("unknown channel `fax`"));
        check(
            "",
            Err("invalid channel name ``: use 1-32 characters of a-z, 0-9, `_` or `-`"),
        );
        check(
            "We Chat",
            Err("invalid channel name `We Chat`: use 1-32 characters of a-z, 0-9, `_` or `-`"),
        );
    }

    #[test]
    fn built_in_channels_cannot_be_declared_custom() {
        let err = ChannelRegistry::new(["sms"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `channels.custom`: `sms` is a built-in channel"
        );
    }

    #[test]
    fn serde_round_trip() {
        for channel in Channel::BUILT_IN
            .iter()
            .cloned()
            .chain([Channel::parse("line").unwrap()])
        {
            let json = serde_json::to_string(&channel).unwrap();
            assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), channel);
        }
        assert!(serde_json::from_str::<Channel>("\"BAD NAME\"").is_err());
    }
}
