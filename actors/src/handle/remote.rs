//! The receiving end of `crate::remote`: what other nodes send this node's
//! actors.

use engine::channel::Channel;
use engine::routing::RuleSet;
use tracing::{info, warn};

use super::Switchboard;
use crate::directory::DirectoryMessage;
use crate::error::ApiError;
use crate::remote::calls::Answering;
use crate::remote::{KnowledgeChange, KnowledgeListener, Remote, RemoteCall, RulesListener};
use crate::root::RootMessage;
use crate::session::SessionMessage;

impl Switchboard {
    /// A cast from another node, for an actor it placed here.
    pub fn receive(&self, remote: Remote) {
        let shared = &self.shared;
        match remote {
            Remote::Group { group, message } => match message.into_message(&shared.rules()) {
                Ok(message) if shared.groups.contains_key(&group) => {
                    shared.group_refs.tell(&group, message)
                }
                Ok(_) => {
                    warn!(group = %group, "message for a group that is not configured here dropped")
                }
                Err(reason) => {
                    warn!(group = %group, %reason, "a queue entry from another node cannot be used here")
                }
            },
            // Here, whatever this node's placement says now: forwarding it
            // on could send it back and forth while two views differ.
            Remote::Agent { agent, message } if shared.agents.contains(&agent) => {
                shared.agent_refs.tell(&agent, message.into_message())
            }
            Remote::Agent { agent, .. } => {
                warn!(agent_id = %agent, "message for an agent that is not configured here dropped")
            }
            Remote::Session { session, message } => {
                // The directory lives as long as the system.
                let _ = shared.directory().cast(DirectoryMessage::ToSessionHere {
                    session,
                    message: message.into_message(),
                });
            }
            Remote::Offer {
                agent,
                session,
                channel,
                group,
            } => {
                // As above.
                let _ = shared.directory().cast(DirectoryMessage::OfferHere {
                    agent,
                    session,
                    channel,
                    group,
                });
            }
            Remote::Event {
                audience,
                event,
                ephemeral,
            } => shared.hub.deliver_here(&audience, &event, ephemeral),
            Remote::Knowledge(change) => {
                if let Some(follow) = shared.knowledge.get() {
                    follow(change);
                }
            }
            Remote::Rules { text, file } => {
                let rules = match RuleSet::parse(&text, &file) {
                    Ok(rules) => rules,
                    Err(err) => {
                        warn!(error = %err, "rules put in force on another node do not parse here; the rules here stay");
                        return;
                    }
                };
                let board = self.clone();
                tokio::spawn(async move {
                    match board.reload_rules(rules).await {
                        Ok(()) => {
                            info!(file = %file, "routing rules replaced on another node are in force here");
                            if let Some(heard) = board.shared.rules_replaced.get() {
                                heard(text);
                            }
                        }
                        Err(err) => {
                            warn!(error = %err, "rules put in force on another node do not fit this node; the rules here stay")
                        }
                    }
                });
            }
        }
    }

    /// Tells every other node that these rules are in force here now (they
    /// take them too; nothing when alone).
    pub fn share_rules(&self, text: &str, file: &str) {
        if let Some(peers) = &self.shared.peers {
            peers.broadcast(Remote::Rules {
                text: text.to_string(),
                file: file.to_string(),
            });
        }
    }

    /// Hears the source of the rules other nodes put in force (set once,
    /// by the gateway, which serves it as `GET /api/v1/rules`).
    pub fn on_rules_replaced(&self, listener: RulesListener) {
        let _ = self.shared.rules_replaced.set(listener); // set once
    }

    /// Follows the knowledge-base and template changes other nodes make
    /// (set once, by the data platform).
    pub fn on_knowledge_change(&self, listener: KnowledgeListener) {
        let _ = self.shared.knowledge.set(listener); // set once; a second platform has none
    }

    /// Tells every other node that the knowledge base or the templates
    /// changed in the store (nothing when alone).
    pub fn knowledge_changed(&self, change: KnowledgeChange) {
        if let Some(peers) = &self.shared.peers {
            peers.broadcast(Remote::Knowledge(change));
        }
    }

    /// The cluster's members changed: this node runs the groups and agents
    /// placed here now (starting them from the store) and stops the others,
    /// learns the open sessions of the customers it is now the index of,
    /// and puts the waiting sessions placed here now back in line (their
    /// node left). Called by the cluster after every change.
    pub async fn rebalance(&self) -> Result<(), ApiError> {
        let shared = &self.shared;
        // The root and the directory live as long as the system.
        let _ = self.root.cast(RootMessage::Rebalance);
        let _ = shared.directory().cast(DirectoryMessage::Rebalance);
        let open = match self.open_chat_sessions().await {
            Ok(open) => open,
            Err(err) => {
                // The Directory holds new sessions until the adoption it
                // was promised: an empty one lets them open.
                let _ = shared
                    .directory()
                    .cast(DirectoryMessage::AdoptOpenSessions {
                        sessions: Vec::new(),
                    });
                return Err(err);
            }
        };
        let adopted = open
            .iter()
            .filter(|s| shared.elsewhere(|p| p.customer(&s.customer_id)).is_none())
            .map(|s| (s.id, s.customer_id.clone()))
            .collect();
        // The directory lives as long as the system.
        let _ = shared
            .directory()
            .cast(DirectoryMessage::AdoptOpenSessions { sessions: adopted });
        for session in open.iter().filter(|s| s.state.is_waiting()) {
            if shared.elsewhere(|p| p.session(session.id)).is_none() {
                shared.tell_session(session.id, SessionMessage::Requeue);
            }
        }
        Ok(())
    }

    /// The open sessions in the store, calls left out (never a customer's
    /// open chat session).
    async fn open_chat_sessions(&self) -> Result<Vec<engine::session::Session>, ApiError> {
        let store = &self.shared.store;
        let mut open = store.open_sessions().await?;
        let mut calls = Vec::new();
        for session in open.iter().filter(|s| s.channel == Channel::Phone) {
            if crate::root::is_call(store.as_ref(), session.id).await? {
                calls.push(session.id);
            }
        }
        open.retain(|session| !calls.contains(&session.id));
        Ok(open)
    }

    /// A call from another node, for an actor it placed here: its message
    /// is in the actor's mailbox (or the Directory's, for a session) when
    /// this returns, so calls taken one after the other reach the actor in
    /// that order; the future is the answer, as JSON.
    pub fn take(&self, call: RemoteCall) -> Answering {
        let shared = &self.shared;
        match call {
            RemoteCall::Session { session, call } => match call.join(&shared.rules()) {
                Ok((message, answer)) => {
                    // The directory lives as long as the system.
                    let _ = shared
                        .directory()
                        .cast(DirectoryMessage::ToSessionHere { session, message });
                    answer
                }
                Err(err) => Box::pin(std::future::ready(Err(err))),
            },
            RemoteCall::OpenSession {
                customer,
                channel,
                call,
            } => match call.join(&shared.rules()) {
                Ok((message, answer)) => {
                    // As above.
                    let _ = shared.directory().cast(DirectoryMessage::OpenSessionHere {
                        customer,
                        channel,
                        message,
                    });
                    answer
                }
                Err(err) => Box::pin(std::future::ready(Err(err))),
            },
            RemoteCall::Agent { agent, call } => {
                let Some(actor) = shared.agent_refs.get(&agent) else {
                    let missing = shared.not_running_agent(&agent);
                    return Box::pin(std::future::ready(Err(missing)));
                };
                let (message, answer) = call.join();
                // A stopped actor drops the port: the caller hears that.
                let _ = actor.cast(message);
                answer
            }
            RemoteCall::ForgetCustomers { customers } => {
                shared.store.forget_cached(&customers);
                Box::pin(std::future::ready(Ok(serde_json::Value::Null)))
            }
            RemoteCall::Group { group, call } => {
                let Some(actor) = shared.group_refs.get(&group) else {
                    let missing = shared.not_running_group(&group);
                    return Box::pin(std::future::ready(Err(missing)));
                };
                let (message, answer) = call.join();
                // As above.
                let _ = actor.cast(message);
                answer
            }
        }
    }
}
