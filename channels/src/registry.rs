//! `[[channels]]`: the configured platform accounts, one adapter each, found
//! by name.
//!
//! ```toml
//! [[channels]]
//! kind = "webhook"          # which adapter reads the platform
//! name = "sms-gw"           # unique; the URL is /api/v1/channels/sms-gw/inbound
//! channel = "sms"           # the channel its customers' messages arrive on
//! secret = "…"              # the platform's shared secret
//! base_url = ""             # where replies go ("" = the kind's default)
//! settings = { tolerance_secs = 300 }   # the kind's own keys
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::channel::Channel;
use engine::secret::Secret;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::adapter::{ChannelAccount, ChannelAdapter};
use crate::bridge::BridgeAdapter;
use crate::limits::InboundLimits;
use crate::qq::QqAdapter;
use crate::webhook::WebhookAdapter;
use crate::wechat::WechatAdapter;

/// One `[[channels]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// The adapter: `webhook` (the generic signed JSON webhook), `wechat`
    /// (a WeChat official account), `qq` (a QQ bot), `bridge` (an
    /// out-of-process adapter connected over a WebSocket).
    pub kind: String,
    /// Unique among the entries: 1 to 32 of a-z, 0-9, `-`, `_`.
    pub name: String,
    /// The channel its customers write on (`sms`, `wechat`, a custom one).
    pub channel: Channel,
    /// The credential shared with the platform. Shown as `<redacted>` by
    /// `check-config` and in logs.
    #[serde(default)]
    pub secret: Secret,
    /// The platform's API, for kinds that call it; empty = the kind's default.
    #[serde(default)]
    pub base_url: String,
    /// The kind's own keys (see each kind).
    #[serde(default)]
    pub settings: toml::Table,
}

/// A `[[channels]]` entry that cannot be used, naming it and the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("channels[{idx}] (`{name}`).{key}: {reason}")]
pub struct ChannelConfigError {
    /// Its place in the list, from 0.
    pub idx: usize,
    /// Its `name` as written.
    pub name: String,
    /// The key at fault: `kind`, `settings.tolerance_secs`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// Builds one kind's adapter from its entry; errors name the key.
type Build = fn(
    ChannelAccount,
    &ChannelConfig,
    InboundLimits,
) -> Result<Arc<dyn ChannelAdapter>, (String, String)>;

/// Every kind switchboard has, by the name `kind` gives.
const KINDS: &[(&str, Build)] = &[
    ("webhook", WebhookAdapter::build),
    ("wechat", WechatAdapter::build),
    ("qq", QqAdapter::build),
    ("bridge", BridgeAdapter::build),
];

/// An entry's `settings` as kind `T` reads them (`deny_unknown_fields`):
/// the error names the key at fault, `settings.tolerance_secs`.
pub(crate) fn kind_settings<T: serde::de::DeserializeOwned>(
    entry: &ChannelConfig,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(toml::Value::Table(entry.settings.clone())).map_err(|err| {
        let path = err.path().to_string();
        let key = match path.as_str() {
            "." => "settings".to_string(),
            path => format!("settings.{path}"),
        };
        (key, err.into_inner().message().trim().to_string())
    })
}

/// The adapters of the configured accounts.
#[derive(Clone, Default)]
pub struct Registry {
    adapters: BTreeMap<String, Arc<dyn ChannelAdapter>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.adapters.values().map(|adapter| adapter.account()))
            .finish()
    }
}

impl Registry {
    /// One adapter per entry, each checked: the first entry at fault is the error.
    pub fn build(
        entries: &[ChannelConfig],
        limits: InboundLimits,
    ) -> Result<Registry, ChannelConfigError> {
        let mut adapters: BTreeMap<String, Arc<dyn ChannelAdapter>> = BTreeMap::new();
        for (idx, entry) in entries.iter().enumerate() {
            let error = |key: &str, reason: String| ChannelConfigError {
                idx,
                name: entry.name.clone(),
                key: key.to_string(),
                reason,
            };
            let name_ok = !entry.name.is_empty()
                && entry.name.len() <= 32
                && entry.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !name_ok {
                return Err(error(
                    "name",
                    "must be 1 to 32 of a-z, 0-9, `-`, `_`".into(),
                ));
            }
            if adapters.contains_key(&entry.name) {
                return Err(error(
                    "name",
                    "is used twice: every account needs its own name".into(),
                ));
            }
            let Some((_, build)) = KINDS.iter().find(|(kind, _)| *kind == entry.kind) else {
                let known: Vec<&str> = KINDS.iter().map(|(kind, _)| *kind).collect();
                return Err(error(
                    "kind",
                    format!("unknown kind `{}`; one of {}", entry.kind, known.join(", ")),
                ));
            };
            let is_http = ["http://", "https://"]
                .iter()
                .any(|scheme| entry.base_url.starts_with(scheme));
            if !entry.base_url.is_empty() && !is_http {
                return Err(error(
                    "base_url",
                    format!("`{}` must start with http:// or https://", entry.base_url),
                ));
            }
            let account = ChannelAccount {
                kind: entry.kind.clone(),
                name: entry.name.clone(),
                channel: entry.channel.clone(),
            };
            let adapter =
                build(account, entry, limits).map_err(|(key, reason)| error(&key, reason))?;
            adapters.insert(entry.name.clone(), adapter);
        }
        Ok(Registry { adapters })
    }

    /// The adapter of account `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn ChannelAdapter>> {
        self.adapters.get(name)
    }

    /// Every account, by name.
    pub fn accounts(&self) -> impl Iterator<Item = &ChannelAccount> {
        self.adapters.values().map(|adapter| adapter.account())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: InboundLimits = InboundLimits {
        max_text_chars: 4000,
    };

    fn entries(toml_text: &str) -> Vec<ChannelConfig> {
        #[derive(Deserialize)]
        struct File {
            channels: Vec<ChannelConfig>,
        }
        toml::from_str::<File>(toml_text).unwrap().channels
    }

    fn check(toml_text: &str, expected: Result<&[(&str, &str, &str)], &str>) {
        let built = Registry::build(&entries(toml_text), LIMITS);
        match (built, expected) {
            (Ok(registry), Ok(accounts)) => {
                let found: Vec<(&str, &str, &str)> = registry
                    .accounts()
                    .map(|a| (a.kind.as_str(), a.name.as_str(), a.channel.as_str()))
                    .collect();
                assert_eq!(found, accounts);
            }
            (Err(err), Err(message)) => assert_eq!(err.to_string(), message),
            (got, expected) => panic!("got {got:?}, expected {expected:?}"),
        }
    }

    const SECRET: &str = "secret = \"0123456789abcdef\"\n";

    #[test]
    fn accounts_are_built_or_refused_naming_the_entry_and_key() {
        check(
            &format!(
                "[[channels]]\nkind = \"webhook\"\nname = \"sms-gw\"\nchannel = \"sms\"\n{SECRET}\
                 [[channels]]\nkind = \"webhook\"\nname = \"line\"\nchannel = \"line\"\n{SECRET}\
                 settings = {{ tolerance_secs = 60 }}\n"
            ),
            Ok(&[("webhook", "line", "line"), ("webhook", "sms-gw", "sms")]),
        );
        check(
            &format!(
                "[[channels]]\nkind = \"webhook\"\nname = \"a\"\nchannel = \"sms\"\n{SECRET}\
                 [[channels]]\nkind = \"webhook\"\nname = \"a\"\nchannel = \"wechat\"\n{SECRET}"
            ),
            Err("channels[1] (`a`).name: is used twice: every account needs its own name"),
        );
        check(
            &format!(
                "[[channels]]\nkind = \"telegram\"\nname = \"tg\"\nchannel = \"sms\"\n{SECRET}"
            ),
            Err(
                "channels[0] (`tg`).kind: unknown kind `telegram`; one of webhook, wechat, qq, bridge",
            ),
        );
        check(
            &format!(
                "[[channels]]\nkind = \"webhook\"\nname = \"SMS\"\nchannel = \"sms\"\n{SECRET}"
            ),
            Err("channels[0] (`SMS`).name: must be 1 to 32 of a-z, 0-9, `-`, `_`"),
        );
        check(
            "[[channels]]\nkind = \"webhook\"\nname = \"sms\"\nchannel = \"sms\"\nsecret = \"short\"\n",
            Err("channels[0] (`sms`).secret: must be at least 16 characters"),
        );
        check(
            &format!(
                "[[channels]]\nkind = \"webhook\"\nname = \"sms\"\nchannel = \"sms\"\n{SECRET}base_url = \"ftp://x\"\n"
            ),
            Err("channels[0] (`sms`).base_url: `ftp://x` must start with http:// or https://"),
        );
        check(
            &format!(
                "[[channels]]\nkind = \"webhook\"\nname = \"sms\"\nchannel = \"sms\"\n{SECRET}settings = {{ tolerance = 5 }}\n"
            ),
            Err(
                "channels[0] (`sms`).settings.tolerance: unknown field `tolerance`, expected `tolerance_secs` or `timeout_ms`",
            ),
        );
        check(
            &format!(
                "[[channels]]\nkind = \"webhook\"\nname = \"sms\"\nchannel = \"sms\"\n{SECRET}settings = {{ tolerance_secs = 0 }}\n"
            ),
            Err("channels[0] (`sms`).settings.tolerance_secs: must be greater than 0"),
        );
    }

    #[test]
    fn bridge_accounts_are_built_or_refused_naming_the_key() {
        let entry = |rest: &str| {
            format!("[[channels]]\nkind = \"bridge\"\nname = \"line\"\nchannel = \"line\"\n{rest}")
        };
        check(
            &entry(&format!("{SECRET}settings = {{ ack_timeout_ms = 2000 }}\n")),
            Ok(&[("bridge", "line", "line")]),
        );
        let registry = Registry::build(&entries(&entry(SECRET)), LIMITS).unwrap();
        assert!(registry.get("line").unwrap().as_bridge().is_some());
        for (rest, message) in [
            (
                "secret = \"short\"\n",
                "channels[0] (`line`).secret: must be at least 16 characters: the token the adapter connects with",
            ),
            (
                &format!("{SECRET}settings = {{ ack_timeout_ms = 0 }}\n"),
                "channels[0] (`line`).settings.ack_timeout_ms: must be greater than 0",
            ),
            (
                &format!("{SECRET}settings = {{ timeout_ms = 5 }}\n"),
                "channels[0] (`line`).settings.timeout_ms: unknown field `timeout_ms`, expected `ack_timeout_ms`",
            ),
            (
                &format!("{SECRET}base_url = \"http://127.0.0.1:9/\"\n"),
                "channels[0] (`line`).base_url: is not used by kind `bridge`: replies go to the connected adapter; remove it",
            ),
        ] {
            check(&entry(rest), Err(message));
        }
    }

    #[test]
    fn wechat_accounts_are_built_or_refused_naming_the_key() {
        let entry = |rest: &str| {
            format!(
                "[[channels]]\nkind = \"wechat\"\nname = \"wx\"\nchannel = \"wechat\"\n\
                 secret = \"3a5f0c1e9b7d4c2a8e6f1b0d9c7a5e3f\"\n{rest}"
            )
        };
        let good = "app_id = \"wxb11529c136998cb6\", token = \"pamtest\"";
        check(
            &entry(&format!("settings = {{ {good} }}\n")),
            Ok(&[("wechat", "wx", "wechat")]),
        );
        check(
            &entry(&format!(
                "base_url = \"http://127.0.0.1:9/\"\nsettings = {{ {good}, encoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\", timeout_ms = 2000, tolerance_secs = 60 }}\n"
            )),
            Ok(&[("wechat", "wx", "wechat")]),
        );
        for (settings, message) in [
            (
                "token = \"pamtest\"",
                "channels[0] (`wx`).settings.app_id: is required: the account's AppID (开发者ID, like `wx1234567890abcdef`), 1 to 32 letters and digits",
            ),
            (
                "app_id = \"wxb11529c136998cb6\"",
                "channels[0] (`wx`).settings.token: is required: the Token (令牌) of the console's server configuration, 3 to 32 letters and digits",
            ),
            (
                "app_id = \"wxb11529c136998cb6\", token = \"ab\"",
                "channels[0] (`wx`).settings.token: must be the Token (令牌) of the console's server configuration, 3 to 32 letters and digits",
            ),
            (
                &format!("{good}, encoding_aes_key = \"tooshort\""),
                "channels[0] (`wx`).settings.encoding_aes_key: must be the 43-character EncodingAESKey, not 8 characters",
            ),
            (
                &format!("{good}, timeout_ms = 0"),
                "channels[0] (`wx`).settings.timeout_ms: must be greater than 0",
            ),
            (
                &format!("{good}, appsecret = \"x\""),
                "channels[0] (`wx`).settings.appsecret: unknown field `appsecret`, expected one of `app_id`, `token`, `encoding_aes_key`, `tolerance_secs`, `timeout_ms`",
            ),
            (
                "app_id = 5",
                "channels[0] (`wx`).settings.app_id: invalid type: integer `5`, expected a string",
            ),
        ] {
            check(
                &entry(&format!("settings = {{ {settings} }}\n")),
                Err(message),
            );
        }
        check(
            "[[channels]]\nkind = \"wechat\"\nname = \"wx\"\nchannel = \"wechat\"\n\
             settings = { app_id = \"wx1\", token = \"pamtest\" }\n",
            Err("channels[0] (`wx`).secret: is required: the account's AppSecret (开发者密码)"),
        );
    }
}
