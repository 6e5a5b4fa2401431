//! The gateway's side of the phone channel: where the SIP registrar finds
//! agents' credentials. The endpoint itself is `voice::sip`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use engine::agent::SipCredentials;
use engine::ids::AgentId;
use store::Store;

/// Agents' SIP credentials from the store, for the registrar. Hashes made
/// for another realm are no credentials: they cannot match a digest in
/// this one, and the log says to set the password again.
pub struct StoreCredentials {
    store: Arc<dyn Store>,
    realm: String,
    /// Agents whose stale realm was logged: once each, however often their
    /// phone (or anyone using their name) tries.
    warned: Mutex<HashSet<String>>,
}

impl StoreCredentials {
    /// Reads agents from `store`; `realm` is `voice.realm`.
    pub fn new(store: Arc<dyn Store>, realm: &str) -> StoreCredentials {
        StoreCredentials {
            store,
            realm: realm.to_owned(),
            warned: Mutex::new(HashSet::new()),
        }
    }
}

#[async_trait::async_trait]
impl voice::sip::SipCredentialSource for StoreCredentials {
    async fn sip_credentials(&self, agent_id: &str) -> Result<Option<SipCredentials>, String> {
        let agent = self
            .store
            .get_agent(&AgentId::new(agent_id))
            .await
            .map_err(|err| format!("reading agent `{agent_id}`: {err}"))?;
        Ok(agent.and_then(|agent| agent.sip).filter(|sip| {
            let same_realm = sip.realm == self.realm;
            let first_time = || {
                self.warned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(agent_id.to_owned())
            };
            if !same_realm && first_time() {
                tracing::warn!(
                    agent_id,
                    stored_realm = %sip.realm,
                    realm = %self.realm,
                    "the agent's SIP password was set for another realm; set it again"
                );
            }
            same_realm
        }))
    }
}

#[cfg(test)]
mod tests {
    use engine::agent::{Agent, Capacity, Role};
    use store::{MemoryStore, WriteOp};
    use voice::sip::SipCredentialSource;

    use super::*;

    fn agent(id: &str, sip: Option<SipCredentials>) -> Agent {
        Agent {
            id: AgentId::new(id),
            display_name: id.into(),
            role: Role::Junior,
            skills: Default::default(),
            groups: Vec::new(),
            languages: Vec::new(),
            capacity: Capacity::default(),
            sip,
        }
    }

    #[tokio::test]
    async fn credentials_of_this_realm_only() {
        let store = Arc::new(MemoryStore::new());
        let here = voice::sip::credentials("ann", "switchboard", "desk-phone-7");
        let elsewhere = voice::sip::credentials("bob", "old-realm", "desk-phone-7");
        store
            .write(&[
                WriteOp::PutAgent(agent("ann", Some(here.clone()))),
                WriteOp::PutAgent(agent("bob", Some(elsewhere))),
                WriteOp::PutAgent(agent("cy", None)),
            ])
            .await
            .unwrap();
        let source = StoreCredentials::new(store, "switchboard");
        assert_eq!(source.sip_credentials("ann").await, Ok(Some(here)));
        assert_eq!(source.sip_credentials("bob").await, Ok(None));
        assert_eq!(source.sip_credentials("cy").await, Ok(None));
        assert_eq!(source.sip_credentials("nobody").await, Ok(None));
    }
}
