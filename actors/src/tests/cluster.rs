//! Two runtimes over one store, joined by an in-process stand-in for the
//! cluster's transport through which every message crosses as JSON: a
//! conversation whose customer, group and agent run on different nodes,
//! watched from sockets on the other node, goes as on one node.

use std::collections::HashMap;
use std::sync::Mutex;

use engine::placement::Placement;
use engine::presence::Presence;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::remote::{Peers, Remote, RemoteAnswer, RemoteCall, RemoteError};

/// The runtimes of the nodes, and casts for nodes not started yet.
#[derive(Default)]
struct Nodes {
    boards: Mutex<HashMap<u8, Switchboard>>,
    pending: Mutex<HashMap<u8, Vec<Remote>>>,
    /// Nodes a test killed: nothing they send arrives any more (their
    /// timers still run in this process).
    dead: Mutex<Vec<u8>>,
}

impl Nodes {
    fn join(&self, node: u8, board: Switchboard) {
        self.boards.lock().unwrap().insert(node, board.clone());
        let pending = self.pending.lock().unwrap().remove(&node);
        for remote in pending.unwrap_or_default() {
            board.receive(remote);
        }
    }

    fn board(&self, node: u8) -> Option<Switchboard> {
        self.boards.lock().unwrap().get(&node).cloned()
    }
}

/// Through JSON, as over the network.
fn cross<T: Serialize + DeserializeOwned>(value: &T) -> T {
    serde_json::from_slice(&serde_json::to_vec(value).unwrap()).unwrap()
}

struct Loopback {
    node_id: u8,
    /// The live members, shared by the nodes: a test removes a "dead" one.
    members: Arc<Mutex<Vec<u8>>>,
    nodes: Arc<Nodes>,
}

impl Peers for Loopback {
    fn node_id(&self) -> u8 {
        self.node_id
    }

    fn placement(&self) -> Arc<Placement> {
        Arc::new(Placement::new(self.members.lock().unwrap().iter().copied()))
    }

    fn cast(&self, node: u8, message: Remote) {
        if self.nodes.dead.lock().unwrap().contains(&self.node_id) {
            return;
        }
        let message = cross(&message);
        match self.nodes.board(node) {
            Some(board) => board.receive(message),
            None => self
                .nodes
                .pending
                .lock()
                .unwrap()
                .entry(node)
                .or_default()
                .push(message),
        }
    }

    fn broadcast(&self, message: Remote) {
        let members = self.members.lock().unwrap().clone();
        for node in members {
            if node != self.node_id {
                self.cast(node, message.clone());
            }
        }
    }

    fn call(&self, node: u8, call: RemoteCall) -> RemoteAnswer {
        let call = cross(&call);
        let board = self.nodes.board(node).expect("every node runs by now");
        // Taken at once, in order with this node's other sends.
        let answer = board.take(call);
        Box::pin(async move {
            let answer = answer.await.map_err(|err| RemoteError::from(&err));
            cross(&answer).map_err(ApiError::from_remote)
        })
    }
}

/// Starts nodes 1 and 2 over one store.
async fn two_nodes() -> (Switchboard, Switchboard) {
    let (one, two, _) = two_nodes_with_members(|agents| agents).await;
    (one, two)
}

/// [`two_nodes`], with the member list their transport places by; the
/// agents' profiles as `agents` makes them.
async fn two_nodes_with_members(
    agents: impl FnOnce(Vec<Agent>) -> Vec<Agent>,
) -> (Switchboard, Switchboard, (Arc<Mutex<Vec<u8>>>, Arc<Nodes>)) {
    let (mut boards, members, nodes) = nodes_over_one_store(2, agents).await;
    let second = boards.pop().unwrap();
    (boards.pop().unwrap(), second, (members, nodes))
}

/// Nodes 1 to `n` over one store, the agents' profiles as `agents` makes
/// them; the member list their transport places by.
async fn nodes_over_one_store(
    n: u8,
    agents: impl FnOnce(Vec<Agent>) -> Vec<Agent>,
) -> (Vec<Switchboard>, Arc<Mutex<Vec<u8>>>, Arc<Nodes>) {
    nodes_over(Arc::new(MemoryStore::new()), n, agents).await
}

/// [`nodes_over_one_store`], over `store`.
async fn nodes_over(
    store: Arc<dyn Store>,
    n: u8,
    agents: impl FnOnce(Vec<Agent>) -> Vec<Agent>,
) -> (Vec<Switchboard>, Arc<Mutex<Vec<u8>>>, Arc<Nodes>) {
    seed(store.as_ref()).await;
    let profiles = agents(store.list_agents().await.unwrap());
    let ops = profiles
        .into_iter()
        .map(WriteOp::PutAgent)
        .collect::<Vec<_>>();
    store.write(&ops).await.unwrap();
    let nodes = Arc::new(Nodes::default());
    let members = Arc::new(Mutex::new((1..=n).collect::<Vec<u8>>()));
    let mut boards = Vec::new();
    for node_id in 1..=n {
        let peers = Loopback {
            node_id,
            members: members.clone(),
            nodes: nodes.clone(),
        };
        let board = Switchboard::start_with_peers(
            store.clone(),
            RuleSet::parse(RULES, "test.toml").unwrap(),
            ChannelRegistry::default(),
            RuntimeConfig {
                node_id,
                ..config()
            },
            Some(Arc::new(peers)),
        )
        .await
        .unwrap();
        nodes.join(node_id, board.clone());
        boards.push(board);
    }
    (boards, members, nodes)
}

#[tokio::test]
async fn a_conversation_across_two_nodes_goes_as_on_one() {
    let (one, two) = two_nodes().await;
    let by_id = |node: u8| if node == 1 { &one } else { &two };
    let placement = Placement::new([1, 2]);
    let customer = CustomerId::new("plain");
    let group = GroupId::new("default");
    // The member of `default` that runs on the other node than the group.
    let agent = ["ann", "bob"]
        .into_iter()
        .map(id)
        .find(|agent| placement.agent(agent) != placement.group(&group))
        .expect("ann or bob runs apart from their group");
    let customer_node = by_id(placement.customer(&customer));
    let agent_node = by_id(placement.agent(&agent));
    // Sockets on the node that does not run the actor.
    let watch_agent = by_id(3 - placement.agent(&agent));
    let watch_customer = by_id(3 - placement.customer(&customer));

    agent_node
        .set_presence(&agent, PresenceRequest::Available)
        .await
        .unwrap();
    let mut agent_events = watch_agent.subscribe_agent(&agent);
    let mut customer_events = watch_customer.subscribe_customer(&customer);
    let ack = customer_node
        .customer_message_as(
            &customer,
            Channel::Web,
            "我的订单何时发货?".into(),
            Some("c1".into()),
        )
        .await
        .unwrap();
    // The session runs where it was opened: on the customer's node.
    assert_eq!(
        placement.session(ack.session),
        placement.customer(&customer)
    );

    let offer = next_event(&mut agent_events, is_offer).await;
    assert_eq!(offer.session, ack.session);
    agent_node.accept(&agent, ack.session).await.unwrap();
    next_event(&mut customer_events, |k| {
        matches!(k, EventKind::Assigned { .. })
    })
    .await;

    let session_node = customer_node;
    session_node
        .agent_message(&agent, ack.session, "明天发货".into(), Some("a1".into()))
        .await
        .unwrap();
    let reply = next_event(&mut customer_events, |k| {
        matches!(
            k,
            EventKind::Message {
                sender: Sender::Agent(_),
                ..
            }
        )
    })
    .await;
    assert!(matches!(reply.kind, EventKind::Message { ref body, .. } if body == "明天发货"));
    let echoed = next_event(&mut agent_events, |k| {
        matches!(
            k,
            EventKind::Message {
                sender: Sender::Agent(_),
                ..
            }
        )
    })
    .await;
    assert_eq!(echoed.seq, reply.seq);

    session_node
        .close(&agent, ack.session, Some("shipped tomorrow".into()))
        .await
        .unwrap();
    next_event(&mut customer_events, |k| {
        matches!(k, EventKind::Closed { .. })
    })
    .await;
    // The agent's capacity came back on its node: a second conversation is
    // offered to it again.
    let second = customer_node
        .customer_message_as(
            &customer,
            Channel::Web,
            "还有一个问题".into(),
            Some("c2".into()),
        )
        .await
        .unwrap();
    assert_ne!(second.session, ack.session);
    let offer = next_event(&mut agent_events, is_offer).await;
    assert_eq!(offer.session, second.session);
}

#[tokio::test]
async fn each_node_runs_only_its_share_of_groups_and_agents() {
    let (one, two) = two_nodes().await;
    let placement = Placement::new([1, 2]);
    for group in ["default", "gold_service"] {
        let group = GroupId::new(group);
        let (here, there) = if placement.group(&group) == 1 {
            (&one, &two)
        } else {
            (&two, &one)
        };
        assert!(
            here.shared().group_refs.get(&group).is_some(),
            "{group} runs on its node"
        );
        assert!(
            there.shared().group_refs.get(&group).is_none(),
            "{group} runs once"
        );
    }
    for agent in ["ann", "bob", "gina"] {
        let agent = id(agent);
        let (here, there) = if placement.agent(&agent) == 1 {
            (&one, &two)
        } else {
            (&two, &one)
        };
        assert!(
            here.shared().agent_refs.get(&agent).is_some(),
            "{agent} runs on its node"
        );
        assert!(
            there.shared().agent_refs.get(&agent).is_none(),
            "{agent} runs once"
        );
    }
}

#[tokio::test]
async fn when_a_node_dies_the_survivor_takes_its_queue_in_order() {
    // Ann alone serves `default`, one chat at a time, so that the offers
    // come one by one in the group's order.
    let (one, two, (members, nodes)) = two_nodes_with_members(|agents| {
        agents
            .into_iter()
            .map(|mut agent| {
                if agent.id == id("ann") {
                    agent.capacity.limits.insert(Channel::Web, 1);
                } else {
                    agent.groups.retain(|group| group.as_str() != "default");
                }
                agent
            })
            .collect()
    })
    .await;
    let placement = Placement::new([1, 2]);
    let group = GroupId::new("default");
    let dead = placement.group(&group);
    let (survivor, doomed) = if dead == 1 {
        (&two, &one)
    } else {
        (&one, &two)
    };
    let survivor_id = 3 - dead;

    // Three customers wait in `default`, in this order, their sessions on
    // whichever node they are placed; nobody is available.
    let mut waiting = Vec::new();
    for (i, customer) in ["w1", "w2", "w3"].into_iter().enumerate() {
        let customer = CustomerId::new(customer);
        survivor
            .write(vec![WriteOp::PutCustomer(Customer::new(
                customer.as_str(),
                "W",
            ))])
            .await
            .unwrap();
        let owner = if placement.customer(&customer) == 1 {
            &one
        } else {
            &two
        };
        let ack = owner
            .customer_message_as(
                &customer,
                Channel::Web,
                format!("第{i}个"),
                Some(format!("m{i}")),
            )
            .await
            .unwrap();
        waiting.push(ack.session);
        // Distinct places in line.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    survivor.flush().await.unwrap();

    // The group's node dies: it stops taking messages, and the survivor is
    // the only member.
    nodes.boards.lock().unwrap().remove(&dead);
    doomed.clone().shutdown().await;
    *members.lock().unwrap() = vec![survivor_id];
    let mut ann = survivor.subscribe_agent(&id("ann"));
    survivor.rebalance().await.unwrap();
    // Ann is ready the moment the group restarts (when her actor runs on
    // the survivor already): the group must not offer the sessions that
    // come back first (those that ran on the survivor) before the one that
    // waited longest (which ran on the dead node and is read back from the
    // store).
    if survivor.shared().agent_refs.get(&id("ann")).is_some() {
        survivor
            .set_presence(&id("ann"), PresenceRequest::Available)
            .await
            .unwrap();
    }

    // Every group and agent runs on the survivor now (they start as the
    // supervisors hear of the change), and the queue comes back from the
    // store in its order.
    timeout(Duration::from_secs(10), async {
        while survivor.shared().group_refs.get(&group).is_none()
            || survivor.shared().agent_refs.get(&id("ann")).is_none()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the group and ann run on the survivor");
    let mut offered = Vec::new();
    for _ in 0..3 {
        survivor
            .set_presence(&id("ann"), PresenceRequest::Available)
            .await
            .unwrap();
        let session = timeout(Duration::from_secs(10), offered_session(&mut ann))
            .await
            .expect("an offer comes");
        survivor.accept(&id("ann"), session).await.unwrap();
        survivor.close(&id("ann"), session, None).await.unwrap();
        offered.push(session);
    }
    assert_eq!(offered, waiting, "offered in the order they queued");
}

#[tokio::test]
async fn a_restarted_node_gets_its_sessions_back_from_the_survivor() {
    let (one, two, (members, nodes)) = two_nodes_with_members(|agents| agents).await;
    let placement = Placement::new([1, 2]);
    let customer = CustomerId::new("plain");
    let home = placement.customer(&customer);
    let other = 3 - home;
    let (home_board, survivor) = if home == 1 {
        (&one, &two)
    } else {
        (&two, &one)
    };
    let store = survivor.store().clone();

    let first = home_board
        .customer_message_as(&customer, Channel::Web, "第一".into(), Some("m1".into()))
        .await
        .unwrap();

    // The customer's node dies; the survivor serves them, in the same session.
    nodes.boards.lock().unwrap().remove(&home);
    home_board.clone().shutdown().await;
    *members.lock().unwrap() = vec![other];
    survivor.rebalance().await.unwrap();
    let second = survivor
        .customer_message_as(&customer, Channel::Web, "第二".into(), Some("m2".into()))
        .await
        .unwrap();
    assert_eq!(second.session, first.session);
    assert!(second.seq > first.seq);

    // It comes back (a new process, the same id): the session is placed
    // there again, and the survivor lets go of it.
    *members.lock().unwrap() = vec![1, 2];
    let peers = Loopback {
        node_id: home,
        members: members.clone(),
        nodes: nodes.clone(),
    };
    let returned = Switchboard::start_with_peers(
        store,
        RuleSet::parse(RULES, "test.toml").unwrap(),
        ChannelRegistry::default(),
        RuntimeConfig {
            node_id: home,
            ..config()
        },
        Some(Arc::new(peers)),
    )
    .await
    .unwrap();
    nodes.join(home, returned.clone());
    survivor.rebalance().await.unwrap();
    returned.rebalance().await.unwrap();
    timeout(Duration::from_secs(10), async {
        while survivor.stats().await.unwrap().n_live_sessions > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the survivor stops the session it no longer runs");
    // Written through the survivor, the message reaches the session on its
    // node again: one session, one writer, nothing lost.
    let third = survivor
        .customer_message_as(&customer, Channel::Web, "第三".into(), Some("m3".into()))
        .await
        .unwrap();
    assert_eq!(third.session, first.session);
    assert!(third.seq > second.seq);
    let history = returned.history(first.session, 0).await.unwrap();
    assert_eq!(
        bodies(&history)
            .iter()
            .map(|(_, body)| body.as_str())
            .collect::<Vec<_>>(),
        ["第一", "第二", "第三"]
    );
}

#[tokio::test]
async fn after_a_death_a_customer_indexed_apart_from_their_session_still_has_one_actor() {
    let (boards, members, nodes) = nodes_over_one_store(3, |agents| agents).await;
    let dead: u8 = 1;
    let survivors = Placement::new([2, 3]);
    // A customer of the doomed node whose session, once it dies, is placed
    // on another survivor than the customer's index.
    let mut found = None;
    for i in 0..40 {
        let customer = CustomerId::new(format!("split-{i}"));
        if Placement::new([1, 2, 3]).customer(&customer) != dead {
            continue;
        }
        boards[0]
            .write(vec![WriteOp::PutCustomer(Customer::new(
                customer.as_str(),
                "S",
            ))])
            .await
            .unwrap();
        let ack = boards[0]
            .customer_message_as(&customer, Channel::Web, "一".into(), Some("m1".into()))
            .await
            .unwrap();
        if survivors.session(ack.session) != survivors.customer(&customer) {
            found = Some((customer, ack));
            break;
        }
        // Not this one: it leaves, so that no other waiting session is
        // woken on the survivors when they take the dead node's share.
        boards[0]
            .customer_leave(&customer, ack.session)
            .await
            .unwrap();
    }
    let (customer, first) = found.expect("one of 40 customers splits");
    boards[0].flush().await.unwrap();
    nodes.boards.lock().unwrap().remove(&dead);
    boards[0].clone().shutdown().await;
    *members.lock().unwrap() = vec![2, 3];
    for board in &boards[1..] {
        board.rebalance().await.unwrap();
    }
    let index = &boards[usize::from(survivors.customer(&customer)) - 1];
    let runner = &boards[usize::from(survivors.session(first.session)) - 1];
    // The session is woken where it is placed, by its customer (through
    // the index's node) and by an agent's view alike: one actor.
    let second = index
        .customer_message_as(&customer, Channel::Web, "二".into(), Some("m2".into()))
        .await
        .unwrap();
    assert_eq!(second.session, first.session);
    runner.live_session(first.session).await.unwrap();
    let third = runner
        .customer_message_as(&customer, Channel::Web, "三".into(), Some("m3".into()))
        .await
        .unwrap();
    assert_eq!(third.session, first.session);
    assert!(third.seq > second.seq);
    assert_eq!(
        index.stats().await.unwrap().n_live_sessions,
        0,
        "no second actor on the index's node"
    );
    assert_eq!(runner.stats().await.unwrap().n_live_sessions, 1);
}

/// Two nodes where only `x` (placed on `x_node`, at most one web chat)
/// and `y` (placed on `survivor`) serve `default`; `x` is available, and a
/// customer placed on `survivor` has been offered to `x`. Then the other
/// node dies: nothing it sends arrives any more, and `survivor` is the only
/// member (its rebalance is the test's to run).
struct OfferedToX {
    survivor: Switchboard,
    x: AgentId,
    y: AgentId,
    session: SessionId,
    y_events: crate::event::Subscription,
}

async fn offered_to_x_then_a_death(x_node: u8, survivor_id: u8) -> OfferedToX {
    let placement = Placement::new([1, 2]);
    let named = |node: u8, prefix: &str| {
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|name| placement.agent(&id(name)) == node)
            .unwrap()
    };
    let (x, y) = (named(x_node, "x"), named(survivor_id, "y"));
    let (xa, ya) = (x.clone(), y.clone());
    let (one, two, (members, nodes)) = two_nodes_with_members(move |agents| {
        let mut agents: Vec<Agent> = agents
            .into_iter()
            .map(|mut agent| {
                agent.groups.retain(|group| group.as_str() != "default");
                agent
            })
            .collect();
        let mut x = agent(&xa, &["default"]);
        x.capacity.limits.insert(Channel::Web, 1);
        agents.push(x);
        agents.push(agent(&ya, &["default"]));
        agents
    })
    .await;
    let (survivor, doomed) = if survivor_id == 1 {
        (one, two)
    } else {
        (two, one)
    };
    let customer = (0..)
        .map(|i| CustomerId::new(format!("c{i}").as_str()))
        .find(|c| placement.customer(c) == survivor_id)
        .unwrap();
    survivor
        .write(vec![WriteOp::PutCustomer(Customer::new(
            customer.as_str(),
            "C",
        ))])
        .await
        .unwrap();
    let mut x_events = survivor.subscribe_agent(&id(&x));
    let y_events = survivor.subscribe_agent(&id(&y));
    survivor
        .set_presence(&id(&x), PresenceRequest::Available)
        .await
        .unwrap();
    let ack = survivor
        .customer_message_as(&customer, Channel::Web, "在吗".into(), Some("m1".into()))
        .await
        .unwrap();
    let offered = timeout(Duration::from_secs(10), offered_session(&mut x_events))
        .await
        .expect("x is offered the session");
    assert_eq!(offered, ack.session);
    survivor.flush().await.unwrap();

    let dead = 3 - survivor_id;
    nodes.dead.lock().unwrap().push(dead);
    nodes.boards.lock().unwrap().remove(&dead);
    doomed.shutdown().await;
    *members.lock().unwrap() = vec![survivor_id];
    OfferedToX {
        survivor,
        x: id(&x),
        y: id(&y),
        session: ack.session,
        y_events,
    }
}

#[tokio::test]
async fn an_offer_to_an_agent_whose_node_dies_goes_to_another_agent() {
    // The group's node survives; the agent it offered to was placed on the
    // other node, which dies with the offer outstanding. The session runs
    // on the survivor too: the rebalance puts it back in line, and the
    // group's next offer replaces the one to the dead node's agent.
    let survivor_id = Placement::new([1, 2]).group(&GroupId::new("default"));
    let OfferedToX {
        survivor,
        y,
        session,
        mut y_events,
        ..
    } = offered_to_x_then_a_death(3 - survivor_id, survivor_id).await;
    survivor.rebalance().await.unwrap();
    timeout(Duration::from_secs(10), async {
        while survivor.shared().agent_refs.get(&y).is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("y runs on the survivor");
    survivor
        .set_presence(&y, PresenceRequest::Available)
        .await
        .unwrap();
    let offered = timeout(Duration::from_secs(10), offered_session(&mut y_events))
        .await
        .expect("the session is offered again, to y");
    assert_eq!(offered, session);
    survivor.accept(&y, offered).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_waiting_session_taken_over_from_a_dead_node_still_overflows_on_time() {
    // A VIP waits in `gold_service` (nobody there is available): 20 s in
    // its first step, 30 s in the second, then `default`. Its session runs
    // on the node that dies 5 s in.
    let (one, two, (members, nodes)) = two_nodes_with_members(|agents| agents).await;
    let placement = Placement::new([1, 2]);
    let customer = (0..)
        .map(|i| CustomerId::new(format!("vip{i}").as_str()))
        .find(|c| placement.customer(c) == 1)
        .unwrap();
    let mut vip = Customer::new(customer.as_str(), "V");
    vip.tier = "vip".into();
    one.write(vec![WriteOp::PutCustomer(vip)]).await.unwrap();
    let ack = one
        .customer_message_as(&customer, Channel::Web, "急".into(), Some("m1".into()))
        .await
        .unwrap();
    one.flush().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;

    nodes.dead.lock().unwrap().push(1);
    nodes.boards.lock().unwrap().remove(&1);
    one.clone().shutdown().await;
    *members.lock().unwrap() = vec![2];
    two.rebalance().await.unwrap();

    // 50 s after it queued (45 s after the takeover) it waits in `default`,
    // as its steps say; without the step's timeout re-armed from its
    // `queued` event it would wait in `gold_service` for ever.
    tokio::time::sleep(Duration::from_secs(46)).await;
    let default = two.group_view(&GroupId::new("default")).await.unwrap();
    let waiting: Vec<SessionId> = default.waiting.iter().map(|w| w.0).collect();
    assert_eq!(waiting, [ack.session], "{default:?}");
    let gold = two.group_view(&GroupId::new("gold_service")).await.unwrap();
    assert!(gold.waiting.is_empty(), "{gold:?}");
}

#[tokio::test]
async fn a_customer_writing_during_a_takeover_keeps_their_open_session() {
    // The customer's index and session are on the node that dies; the
    // survivor becomes their index, and is still reading the open sessions
    // from the store when the customer's next message comes.
    let store = Arc::new(store::testing::TestStore::new());
    let (boards, members, nodes) = nodes_over(store.clone(), 2, |agents| agents).await;
    let placement = Placement::new([1, 2]);
    let customer = (0..)
        .map(|i| CustomerId::new(format!("t{i}").as_str()))
        .find(|c| placement.customer(c) == 1)
        .unwrap();
    let (doomed, survivor) = (&boards[0], &boards[1]);
    survivor
        .write(vec![WriteOp::PutCustomer(Customer::new(
            customer.as_str(),
            "T",
        ))])
        .await
        .unwrap();
    let first = doomed
        .customer_message_as(&customer, Channel::Web, "一".into(), Some("m1".into()))
        .await
        .unwrap();
    doomed.flush().await.unwrap();

    nodes.dead.lock().unwrap().push(1);
    nodes.boards.lock().unwrap().remove(&1);
    doomed.clone().shutdown().await;
    *members.lock().unwrap() = vec![2];
    store.hold_open_sessions();
    let rebalancing = tokio::spawn({
        let survivor = survivor.clone();
        async move { survivor.rebalance().await }
    });
    timeout(Duration::from_secs(10), store.until_open_sessions_waits())
        .await
        .expect("the rebalance reads the open sessions");
    let second = tokio::spawn({
        let (survivor, customer) = (survivor.clone(), customer.clone());
        async move {
            survivor
                .customer_message_as(&customer, Channel::Web, "二".into(), Some("m2".into()))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.release_open_sessions();
    rebalancing.await.unwrap().unwrap();
    let second = timeout(Duration::from_secs(10), second)
        .await
        .expect("the message is taken")
        .unwrap()
        .unwrap();
    assert_eq!(second.session, first.session, "one open session");
    assert!(second.seq > first.seq);
}

#[tokio::test]
async fn when_the_groups_node_dies_an_outstanding_offer_gives_way_to_the_next() {
    // The group runs on the node that dies; its offer to `x`, on the
    // survivor with the session, is outstanding. The group starts again on
    // the survivor, reads its queue back, and offers the session to `y`:
    // the session lets x's offer lapse for it, instead of refusing y's
    // until x's offer times out (15 s).
    let survivor_id = 3 - Placement::new([1, 2]).group(&GroupId::new("default"));
    let OfferedToX {
        survivor,
        x,
        y,
        session,
        mut y_events,
    } = offered_to_x_then_a_death(survivor_id, survivor_id).await;
    survivor
        .set_presence(&y, PresenceRequest::Available)
        .await
        .unwrap();
    survivor.rebalance().await.unwrap();
    let offered = timeout(Duration::from_secs(5), offered_session(&mut y_events))
        .await
        .expect("the session is offered to y well before x's offer times out");
    assert_eq!(offered, session);
    survivor.accept(&y, offered).await.unwrap();
    // x's offer is gone: accepting it now is refused.
    assert!(survivor.accept(&x, offered).await.is_err());
}

#[tokio::test]
async fn an_agent_moved_between_live_nodes_keeps_their_presence() {
    let (one, two, (members, _nodes)) = two_nodes_with_members(|agents| agents).await;
    let placement = Placement::new([1, 2]);
    let on_two: Vec<AgentId> = ["ann", "bob", "gina"]
        .into_iter()
        .map(id)
        .filter(|agent| placement.agent(agent) == 2)
        .collect();
    assert!(!on_two.is_empty(), "some agent is placed on node 2");
    for agent in &on_two {
        two.set_presence(agent, PresenceRequest::Available)
            .await
            .unwrap();
    }

    // Node 2 stops taking work (a graceful leave): its agents move to
    // node 1, which starts them; node 2 hands their presence over.
    *members.lock().unwrap() = vec![1];
    one.rebalance().await.unwrap();
    two.rebalance().await.unwrap();
    for agent in &on_two {
        let presence = timeout(Duration::from_secs(5), async {
            loop {
                if let Ok(view) = one.agent_view(agent).await
                    && view.presence == Presence::Available
                {
                    return view.presence;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{agent} is available on node 1"));
        assert_eq!(presence, Presence::Available);
        assert!(two.shared().agent_refs.get(agent).is_none());
    }
}
