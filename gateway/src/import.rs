//! `switchboard import FILE`: provisions skill groups, agents and customers
//! from a TOML file (JSON when the name ends in `.json`) into the configured
//! store, through the same write as the demo seed ([`Switchboard::seed`]).
//!
//! ```toml
//! [[group]]
//! id = "default"
//! name = "Default"                       # optional; defaults to the id
//! sla_threshold_secs = 30                # optional, as SkillGroup
//! sla_threshold_by_channel = { email = 3600 }
//! sla_target_pct = 80.0
//! short_abandon_secs = 5
//!
//! [[agent]]
//! id = "lt-agent-1"
//! name = "Load agent 1"
//! role = "junior"                        # junior (default), expert or supervisor
//! groups = ["default"]                   # in this file or already in the store
//! skills = { orders = 3 }                # proficiency 1-5
//! capacity = { web = 20, app = 20 }      # optional; default 3 chats, 1 call, 5 emails
//! exclusive = ["phone"]                  # optional; default ["phone"]
//! languages = ["zh-CN", "en"]            # optional; default ["zh-CN"]
//! sip_password = "…"                     # optional: the agent's SIP phone password
//!                                        #   (stored hashed for voice.realm; at
//!                                        #   least 8 characters); kept if omitted
//!
//! [[customer]]
//! id = "lt-cust-1"
//! name = "Load customer 1"               # optional; defaults to the id
//! tier = "vip"                           # optional; default standard
//! tags = ["repeat-buyer"]
//! language = "zh-CN"
//! identities = ["web:lt-visitor-1", "wechat:o6_abc"]
//! ```
//!
//! Everything is validated before anything is written; each problem is
//! reported as `<kind>[<index>].<field>: <reason>` (indices count from 0, in
//! file order) and then nothing is written. The import is an upsert: running
//! it again changes nothing, and an entry whose id exists replaces that
//! profile (a customer keeps its creation time and sticky last agent, an
//! agent without `sip_password` keeps the SIP password it has).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use actors::Switchboard;
use anyhow::{Context, Result, bail};
use engine::agent::{Agent, Capacity, Role as AgentRole};
use engine::channel::{Channel, ChannelRegistry};
use engine::customer::{Customer, Identity};
use engine::group::SkillGroup;
use engine::ids::{AgentId, GroupId};
use futures_util::StreamExt;
use serde::Deserialize;
use store::Store;

/// Longest id of any entry.
const MAX_ID_CHARS: usize = 128;
/// Problems listed before the rest are summarised as a count.
const MAX_REPORTED: usize = 50;
/// Store reads in flight while checking customers against the store.
const READS_IN_FLIGHT: usize = 32;

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportFile {
    /// `[[group]]` entries.
    #[serde(default, alias = "groups")]
    pub group: Vec<GroupEntry>,
    /// `[[agent]]` entries.
    #[serde(default, alias = "agents")]
    pub agent: Vec<AgentEntry>,
    /// `[[customer]]` entries.
    #[serde(default, alias = "customers")]
    pub customer: Vec<CustomerEntry>,
}

/// One `[[group]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    id: String,
    name: Option<String>,
    sla_threshold_secs: Option<u32>,
    #[serde(default)]
    sla_threshold_by_channel: BTreeMap<String, u32>,
    sla_target_pct: Option<f64>,
    short_abandon_secs: Option<u32>,
}

/// One `[[agent]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    id: String,
    name: Option<String>,
    role: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    skills: BTreeMap<String, i64>,
    capacity: Option<BTreeMap<String, i64>>,
    exclusive: Option<Vec<String>>,
    languages: Option<Vec<String>>,
    sip_password: Option<String>,
}

/// One `[[customer]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerEntry {
    id: String,
    name: Option<String>,
    tier: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    language: Option<String>,
    #[serde(default)]
    identities: Vec<String>,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Groups written.
    pub n_groups: usize,
    /// Agents written.
    pub n_agents: usize,
    /// Customers written.
    pub n_customers: usize,
    /// Validation and writing.
    pub elapsed: Duration,
}

/// The entries, checked and converted, ready to write.
#[derive(Debug, Default)]
pub struct Plan {
    /// Skill groups.
    pub groups: Vec<SkillGroup>,
    /// Agents.
    pub agents: Vec<Agent>,
    /// Customers (creation time and last agent not yet merged with the store).
    pub customers: Vec<Customer>,
    /// Agents' new SIP passwords, in clear until [`import`] hashes them.
    pub sip_passwords: Vec<(AgentId, String)>,
}

/// Problems found, each `<kind>[<index>].<field>: <reason>`.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, kind: &str, index: usize, field: &str, reason: impl std::fmt::Display) {
        self.0.push(format!("{kind}[{index}].{field}: {reason}"));
    }

    /// Every problem, one per line; `Ok` when there are none.
    fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let n_problems = self.0.len();
        let mut text = self.0[..n_problems.min(MAX_REPORTED)].join("\n");
        if n_problems > MAX_REPORTED {
            text.push_str(&format!("\n… and {} more", n_problems - MAX_REPORTED));
        }
        bail!("{n_problems} problem(s), nothing was written:\n{text}")
    }
}

/// Reads and parses `path`: JSON when it ends in `.json`, else TOML. A
/// parse error names the field's path (`agent[2].capacity.web`).
pub fn read_file(path: &Path) -> Result<ImportFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read import file {}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    let parsed = match is_json {
        true => {
            let mut deserializer = serde_json::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(&mut deserializer)
                .map_err(|err| anyhow::anyhow!("{}: {}", err.path().clone(), err.into_inner()))
        }
        false => {
            let deserializer = toml::Deserializer::parse(&text)
                .map_err(|err| anyhow::anyhow!("{}", err.to_string().trim_end()))?;
            serde_path_to_error::deserialize(deserializer).map_err(|err| {
                let path = err.path().to_string();
                anyhow::anyhow!("{path}: {}", err.into_inner().to_string().trim_end())
            })
        }
    };
    parsed.with_context(|| format!("invalid import file {}", path.display()))
}

/// Checks every entry on its own and against the others; `known_groups` are
/// the groups already in the store, which agents may name too.
pub fn plan(file: ImportFile, known_groups: &BTreeSet<GroupId>) -> Result<Plan> {
    let mut problems = Problems::default();
    let channels = ChannelRegistry::default();
    let parse_channel = |name: &str| -> Result<Channel, String> {
        let channel = Channel::parse(name).map_err(|err| err.to_string())?;
        channels.check(&channel).map_err(|err| err.to_string())?;
        Ok(channel)
    };
    let mut plan = Plan::default();

    let mut group_ids = HashMap::new();
    for (index, entry) in file.group.into_iter().enumerate() {
        check_id(&mut problems, "group", index, &entry.id, &mut group_ids);
        let mut group = SkillGroup::new(
            entry.id.as_str(),
            entry.name.unwrap_or_else(|| entry.id.clone()),
        );
        if let Some(secs) = entry.sla_threshold_secs {
            group.sla_threshold_secs = secs;
        }
        for (name, secs) in entry.sla_threshold_by_channel {
            match parse_channel(&name) {
                Ok(channel) => {
                    group.sla_threshold_by_channel.insert(channel, secs);
                }
                Err(err) => problems.add("group", index, "sla_threshold_by_channel", err),
            }
        }
        if let Some(pct) = entry.sla_target_pct {
            match (0.0..=100.0).contains(&pct) {
                true => group.sla_target_pct = pct,
                false => problems.add("group", index, "sla_target_pct", "must be 0 to 100"),
            }
        }
        if let Some(secs) = entry.short_abandon_secs {
            group.short_abandon_secs = secs;
        }
        plan.groups.push(group);
    }
    let groups: BTreeSet<&str> = group_ids
        .keys()
        .map(String::as_str)
        .chain(known_groups.iter().map(GroupId::as_str))
        .collect();

    let mut agent_ids = HashMap::new();
    for (index, entry) in file.agent.into_iter().enumerate() {
        check_id(&mut problems, "agent", index, &entry.id, &mut agent_ids);
        let role = match entry.role.as_deref().unwrap_or("junior") {
            "junior" => AgentRole::Junior,
            "expert" => AgentRole::Expert,
            "supervisor" => AgentRole::Supervisor,
            other => {
                let reason = format!("must be junior, expert or supervisor, not `{other}`");
                problems.add("agent", index, "role", reason);
                AgentRole::Junior
            }
        };
        if entry.groups.is_empty() {
            problems.add("agent", index, "groups", "must name at least one group");
        }
        for (group_idx, group) in entry.groups.iter().enumerate() {
            if !groups.contains(group.as_str()) {
                let field = format!("groups[{group_idx}]");
                let reason = format!("unknown group `{group}` (not in this file nor in the store)");
                problems.add("agent", index, &field, reason);
            }
        }
        let mut skills = BTreeMap::new();
        for (skill, level) in entry.skills {
            match u8::try_from(level)
                .ok()
                .filter(|level| (1..=5).contains(level))
            {
                Some(level) => {
                    skills.insert(skill, level);
                }
                None => {
                    let field = format!("skills.{skill}");
                    problems.add(
                        "agent",
                        index,
                        &field,
                        format!("must be 1 to 5, not {level}"),
                    );
                }
            }
        }
        let mut capacity = Capacity::default();
        if let Some(limits) = entry.capacity {
            capacity.limits.clear();
            if limits.is_empty() {
                problems.add("agent", index, "capacity", "must list at least one channel");
            }
            for (name, limit) in limits {
                let field = format!("capacity.{name}");
                let channel = match parse_channel(&name) {
                    Ok(channel) => channel,
                    Err(err) => {
                        problems.add("agent", index, &field, err);
                        continue;
                    }
                };
                match u16::try_from(limit).ok().filter(|limit| *limit >= 1) {
                    Some(limit) => {
                        capacity.limits.insert(channel, limit);
                    }
                    None => problems.add(
                        "agent",
                        index,
                        &field,
                        format!("must be 1 to 65535, not {limit} (leave the channel out to never offer it)"),
                    ),
                }
            }
        }
        if let Some(exclusive) = entry.exclusive {
            capacity.exclusive.clear();
            for name in exclusive {
                match parse_channel(&name) {
                    Ok(channel) => {
                        capacity.exclusive.insert(channel);
                    }
                    Err(err) => problems.add("agent", index, "exclusive", err),
                }
            }
        }
        if let Some(password) = entry.sip_password {
            match check_sip_password(&password) {
                Ok(()) => plan
                    .sip_passwords
                    .push((AgentId::new(entry.id.as_str()), password)),
                Err(reason) => problems.add("agent", index, "sip_password", reason),
            }
        }
        plan.agents.push(Agent {
            id: AgentId::new(entry.id.as_str()),
            display_name: entry.name.unwrap_or_else(|| entry.id.clone()),
            role,
            skills,
            groups: entry.groups.iter().map(GroupId::new).collect(),
            languages: entry.languages.unwrap_or_else(|| vec!["zh-CN".into()]),
            capacity,
            sip: None,
        });
    }

    let mut customer_ids = HashMap::new();
    let mut identity_owners: HashMap<Identity, usize> = HashMap::new();
    for (index, entry) in file.customer.into_iter().enumerate() {
        check_id(
            &mut problems,
            "customer",
            index,
            &entry.id,
            &mut customer_ids,
        );
        let mut customer = Customer::new(
            entry.id.as_str(),
            entry.name.unwrap_or_else(|| entry.id.clone()),
        );
        if let Some(tier) = entry.tier {
            customer.tier = tier;
        }
        if let Some(language) = entry.language {
            customer.language = language;
        }
        customer.tags = entry.tags;
        for (identity_idx, text) in entry.identities.iter().enumerate() {
            let field = format!("identities[{identity_idx}]");
            let Some((channel, external_id)) = text.split_once(':') else {
                let reason = format!("`{text}` must be `<channel>:<id on that channel>`");
                problems.add("customer", index, &field, reason);
                continue;
            };
            let channel = match parse_channel(channel) {
                Ok(channel) => channel,
                Err(err) => {
                    problems.add("customer", index, &field, err);
                    continue;
                }
            };
            if external_id.is_empty() {
                problems.add("customer", index, &field, "the id on the channel is empty");
                continue;
            }
            let identity = Identity {
                channel,
                external_id: external_id.to_string(),
            };
            if let Some(first) = identity_owners.insert(identity.clone(), index) {
                let reason = format!("`{text}` is also listed by customer[{first}]");
                problems.add("customer", index, &field, reason);
            }
            customer.identities.push(identity);
        }
        plan.customers.push(customer);
    }
    problems.into_result()?;
    Ok(plan)
}

/// An id: 1-128 characters, no spaces, not used by an earlier entry of its kind.
fn check_id(
    problems: &mut Problems,
    kind: &str,
    index: usize,
    id: &str,
    seen: &mut HashMap<String, usize>,
) {
    let n_chars = id.chars().count();
    if n_chars == 0 || n_chars > MAX_ID_CHARS || id.chars().any(char::is_whitespace) {
        let reason = format!("`{id}` must be 1 to {MAX_ID_CHARS} characters without spaces");
        problems.add(kind, index, "id", reason);
    }
    if let Some(first) = seen.insert(id.to_string(), index) {
        problems.add(kind, index, "id", format!("`{id}` is also {kind}[{first}]"));
    }
}

/// Merges what the store already knows about the plan's customers: an
/// existing customer keeps its creation time and last agent; an identity
/// that belongs to a customer not being imported with it is a problem.
async fn merge_with_store(store: &dyn Store, customers: &mut [Customer]) -> Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let checks = futures_util::stream::iter(customers.iter().enumerate())
        .map(|(index, customer)| async move {
            let existing = store.get_customer(&customer.id).await?;
            let mut taken = Vec::new();
            for (identity_idx, identity) in customer.identities.iter().enumerate() {
                let owner = store
                    .find_customer_by_identity(&identity.channel, &identity.external_id)
                    .await?;
                if let Some(owner) = owner.filter(|owner| owner != &customer.id) {
                    taken.push((identity_idx, owner));
                }
            }
            Ok::<_, store::StoreError>((index, existing, taken))
        })
        .buffer_unordered(READS_IN_FLIGHT);
    let results: Vec<_> = checks.collect().await;
    let mut problems = Problems::default();
    for result in results {
        let (index, existing, taken) = result.context("failed to read the store")?;
        let customer = &mut customers[index];
        customer.created_at = existing.as_ref().map_or(now, |old| old.created_at);
        customer.last_agent = existing.and_then(|old| old.last_agent);
        for (identity_idx, owner) in taken {
            let identity = &customer.identities[identity_idx];
            let field = format!("identities[{identity_idx}]");
            problems.add(
                "customer",
                index,
                &field,
                format!("`{identity}` already belongs to customer `{owner}`"),
            );
        }
    }
    problems.0.sort();
    problems.into_result()
}

/// The shortest SIP password accepted: a phone's password is typed into a
/// device once and guessed by anyone who can reach the port.
pub const MIN_SIP_PASSWORD_CHARS: usize = 8;

/// Checks a new SIP password; the reason names what is wrong.
pub fn check_sip_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_SIP_PASSWORD_CHARS {
        return Err(format!(
            "must be at least {MIN_SIP_PASSWORD_CHARS} characters"
        ));
    }
    if password.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Validates `file` against `store` and writes it in one store write. SIP
/// passwords are hashed for `realm` (`voice.realm`).
pub async fn import(store: &dyn Store, file: ImportFile, realm: &str) -> Result<Summary> {
    let started = Instant::now();
    let known_groups: BTreeSet<GroupId> = store
        .list_groups()
        .await
        .context("failed to read skill groups")?
        .into_iter()
        .map(|group| group.id)
        .collect();
    let mut plan = plan(file, &known_groups)?;
    merge_with_store(store, &mut plan.customers).await?;
    let passwords: HashMap<AgentId, String> = plan.sip_passwords.drain(..).collect();
    for agent in &mut plan.agents {
        agent.sip = match passwords.get(&agent.id) {
            Some(password) => Some(voice::sip::credentials(agent.id.as_str(), realm, password)),
            // Re-importing a profile keeps the phone's password.
            None => store
                .get_agent(&agent.id)
                .await
                .with_context(|| format!("failed to read agent `{}`", agent.id))?
                .and_then(|stored| stored.sip),
        };
    }
    let summary = Summary {
        n_groups: plan.groups.len(),
        n_agents: plan.agents.len(),
        n_customers: plan.customers.len(),
        elapsed: Duration::ZERO,
    };
    // Straight to the store, not through the StoreWriter: `switchboard
    // import` runs offline, with no runtime (agents and groups take effect
    // at the next start).
    Switchboard::seed(store, plan.agents, plan.groups, plan.customers)
        .await
        .context("failed to write to the store")?;
    Ok(Summary {
        elapsed: started.elapsed(),
        ..summary
    })
}

#[cfg(test)]
mod proptests;
