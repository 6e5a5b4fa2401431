//! The agent desktop (`/desktop`) and the customer chat (`/chat`) in a real
//! headless Chromium driven through chromedriver, both pages at once against
//! a real server: the conversation, live ticket sync, reply suggestions,
//! Chinese knowledge-base search, the role layouts, resuming after a
//! reload, a phone call held, resumed and hung up from the desktop, and
//! the delivery state of replies to an SMS customer. The
//! tests write the screenshots the README shows (`docs/screenshots/`).

// The browser softphone's tests await deep futures (a call answered in the
// page, then the checks): rustc's layout of them needs more than 128 levels.
#![recursion_limit = "256"]

#[path = "../common/mod.rs"]
mod common;
mod proxy;
mod softphone;
mod webdriver;

use std::path::PathBuf;

use gateway::auth::Role;
use serde_json::{Value, json};

use crate::common::platform::Platform;
use crate::common::sipp::{caller_until_bye, phone, phone_server};
use crate::common::{Client, TestServer, session_of};
use crate::webdriver::{ALT, Browser, Driver, ENTER, RELEASE};

/// The brief's example: typing this offers [`ORDER_DELAY_REPLY`] first.
const ORDER_DELAY: &str = "订单延迟";
const ORDER_DELAY_REPLY: &str = "您的订单因物流原因延迟,预计3天内送达,我们已为您优先处理。";

/// Where the README's screenshots live.
fn screenshot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/screenshots")
        .join(name)
}

/// A server whose offers wait long enough for a person (or a test) to click.
async fn server() -> TestServer {
    TestServer::start(|config| {
        config.routing.offer_timeout_ms = 60_000;
        config.routing.queue_update_ms = 500;
    })
    .await
}

/// Opens the desktop signed in as `agent` and waits for the socket.
async fn open_desktop(browser: &Browser, server: &TestServer, agent: &str, role: Role) {
    let token = server.token(agent, role);
    browser
        .goto(&server.http_url(&format!("/desktop?token={token}")))
        .await;
    browser.wait_visible("#connection[data-state='open']").await;
}

/// Sets the desktop's presence to available.
async fn go_available(browser: &Browser) {
    browser.choose("#presence-select", "available").await;
    browser.click("#presence-apply").await;
    browser
        .wait_visible("#presence-state[data-state='available']")
        .await;
}

/// Opens the chat as `customer` and waits for the socket.
async fn open_chat(browser: &Browser, server: &TestServer, customer: &str) {
    let token = server.token(customer, Role::Customer);
    browser
        .goto(&server.http_url(&format!("/chat?token={token}")))
        .await;
    browser.wait_visible("#connection[data-state='open']").await;
}

/// Every message of the chat, in order: (sender, seq, text).
async fn chat_messages(browser: &Browser) -> Vec<(String, String, String)> {
    let value = browser
        .exec(
            "return [...document.querySelectorAll('#messages li.msg:not(.system)')].map(li => \
             [li.dataset.sender || '', li.dataset.seq || '', li.querySelector('.body').innerText]);",
            json!([]),
        )
        .await;
    serde_json::from_value(value).unwrap()
}

/// A time recorded by [`mark_on`] or [`mark_when_shown`].
async fn window_ms(browser: &Browser, name: &str) -> f64 {
    let value = browser
        .exec("return window[arguments[0]]", json!([name]))
        .await;
    value
        .as_f64()
        .unwrap_or_else(|| panic!("window.{name} was not recorded: {value}"))
}

/// Records in `window[name]` when `css` first gets `event` (the last one
/// wins, so a keydown marks the Enter that sends).
async fn mark_on(browser: &Browser, css: &str, event: &str, name: &str) {
    browser
        .exec(
            "document.querySelector(arguments[0]).addEventListener(arguments[1], () => { window[arguments[2]] = Date.now(); }, true);",
            json!([css, event, name]),
        )
        .await;
}

/// Records in `window[name]` when an element matching `css` holding `text`
/// first appears.
async fn mark_when_shown(browser: &Browser, css: &str, text: &str, name: &str) {
    browser
        .exec(
            "const [css, text, name] = arguments;
             const seen = () => [...document.querySelectorAll(css)].some(el => el.innerText.includes(text));
             window[name] = null;
             const observer = new MutationObserver(() => {
               if (window[name] === null && seen()) { window[name] = Date.now(); observer.disconnect(); }
             });
             observer.observe(document.body, {childList: true, subtree: true, characterData: true, attributes: true});",
            json!([css, text, name]),
        )
        .await;
}

/// Visible buttons, inputs, selects and textareas that a screen reader
/// could not name (no label, aria-label, aria-labelledby or text).
async fn unlabelled_controls(browser: &Browser) -> Vec<String> {
    let value = browser
        .exec(
            "return [...document.querySelectorAll('button, input, select, textarea')]
               .filter(el => el.offsetParent !== null)
               .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                             && !el.getAttribute('aria-labelledby') && !el.innerText.trim())
               .map(el => el.outerHTML.slice(0, 120));",
            json!([]),
        )
        .await;
    serde_json::from_value(value).unwrap()
}

/// How many elements match `css`.
async fn count(browser: &Browser, css: &str) -> u64 {
    let value = browser
        .exec(
            "return document.querySelectorAll(arguments[0]).length",
            json!([css]),
        )
        .await;
    value.as_u64().unwrap()
}

/// Whether the page has an element matching `css` at all.
async fn present(browser: &Browser, css: &str) -> bool {
    browser
        .exec(
            "return document.querySelector(arguments[0]) !== null",
            json!([css]),
        )
        .await
        == json!(true)
}

fn session_id(value: &Value) -> engine::ids::SessionId {
    engine::ids::SessionId(value.as_str().unwrap().parse().unwrap())
}

fn lang(value: Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_from_chat_to_desktop_with_live_tickets_and_resume() {
    let server = server().await;
    let driver = Driver::start().await;
    let desktop = driver.browser("zh-CN", 1500, 1000).await;
    let chat = driver.browser("en-US", 420, 860).await;

    open_desktop(&desktop, &server, "chen.jie", Role::Agent).await;
    assert_eq!(
        lang(
            desktop
                .exec("return document.documentElement.lang", json!([]))
                .await
        ),
        "zh-CN",
        "a browser preferring Chinese gets the Chinese desktop"
    );
    go_available(&desktop).await;
    open_chat(&chat, &server, "cust-003").await;
    assert_eq!(
        lang(
            chat.exec("return document.documentElement.lang", json!([]))
                .await
        ),
        "en",
        "a browser preferring English gets the English chat"
    );

    // The customer writes; the agent gets the offer with a countdown, accepts.
    chat.type_text("#message-input", "Hello, where is my order #20231020?")
        .await;
    mark_on(&chat, "#send-button", "click", "sentAt").await;
    mark_when_shown(&desktop, "#offers li.offer", "Emma Lee", "offerAt").await;
    chat.click("#send-button").await;
    chat.wait_visible("#messages li.msg[data-sender='customer'] .state[data-state='sent']")
        .await;
    desktop.wait_visible("#offers li.offer .countdown").await;
    desktop.wait_text("#offers li.offer", "Emma Lee").await;
    desktop.click("#offers li.offer button.accept").await;
    desktop
        .wait_visible("section.session .session-state[data-state='assigned']")
        .await;
    desktop
        .wait_text("section.session .messages", "where is my order")
        .await;
    let web_session = desktop
        .exec(
            "return document.querySelector('section.session:not([hidden])').dataset.session",
            json!([]),
        )
        .await;
    let web_card = format!(
        "section.session[data-session='{}']",
        web_session.as_str().unwrap()
    );
    desktop.wait_text("#customer-body", "Emma Lee").await;
    desktop
        .wait_visible("#customer-tickets li[data-ticket-id]")
        .await;
    chat.wait_text("#agent-name", "Chen Jie").await;

    // The customer's typing shows on the desktop.
    chat.type_text("#message-input", "one more thing").await;
    desktop
        .wait_text(&format!("{web_card} .typing"), "Emma Lee")
        .await;

    // The agent replies with Enter; the customer sees it.
    mark_on(
        &desktop,
        &format!("{web_card} textarea.composer-input"),
        "keydown",
        "replyAt",
    )
    .await;
    mark_when_shown(
        &chat,
        "#messages li.msg[data-sender='agent']",
        "let me check",
        "replySeenAt",
    )
    .await;
    desktop
        .type_text(
            &format!("{web_card} textarea.composer-input"),
            &format!("Hello Emma, let me check that for you.{ENTER}"),
        )
        .await;
    desktop
        .wait_visible(&format!("{web_card} li.msg.mine .state[data-state='sent']"))
        .await;
    chat.wait_text("#messages li.msg[data-sender='agent']", "let me check")
        .await;
    let to_offer = window_ms(&desktop, "offerAt").await - window_ms(&chat, "sentAt").await;
    let to_reply = window_ms(&chat, "replySeenAt").await - window_ms(&desktop, "replyAt").await;
    println!(
        "browser to browser: customer's send click -> offer shown on the desktop {to_offer} ms; \
         agent's Enter -> reply shown on the customer's page {to_reply} ms"
    );

    // A second customer on the app channel: both conversations side by side.
    let app_url = format!(
        "{}&channel=app",
        server.ws_url("/ws/customer", &server.token("cust-002", Role::Customer))
    );
    let mut app_customer = Client::connect(&app_url).await;
    app_customer.hello(json!({})).await;
    let ack = app_customer
        .say(json!({}), "app-1", "我的退款什么时候到账?")
        .await;
    let app_session = session_of(&ack);
    desktop
        .click(&format!(
            "#offers li.offer[data-session='{app_session}'] button.accept"
        ))
        .await;
    let app_card = format!("section.session[data-session='{app_session}']");
    desktop
        .wait_visible(&format!("{app_card} .badge.channel[data-channel='app']"))
        .await;
    desktop
        .type_text(
            &format!("{app_card} textarea.composer-input"),
            &format!("您好,我来帮您查询退款进度。{ENTER}"),
        )
        .await;
    app_customer
        .wait_for("the agent's reply on the app", |frame| {
            frame["type"] == "message" && frame["sender"] == "agent:chen.jie"
        })
        .await;
    // Keyboard: Alt+1 puts the first suggestion into the reply box.
    let app_input = format!("{app_card} textarea.composer-input");
    desktop.type_text(&app_input, "退款").await;
    // The list says which draft it answers: read it once it answers this one.
    desktop
        .wait_visible(&format!(
            "{app_card} .suggestions[data-for=\"退款\"] li:first-child .suggestion"
        ))
        .await;
    let first = desktop
        .exec(
            "return document.querySelector(arguments[0] + ' .suggestions .suggestion-text').innerText",
            json!([app_card]),
        )
        .await;
    desktop
        .type_text(&app_input, &format!("{ALT}1{RELEASE}"))
        .await;
    let draft = desktop
        .exec(
            "return document.querySelector(arguments[0]).value",
            json!([app_input]),
        )
        .await;
    assert_eq!(draft, first, "Alt+1 inserted the first suggestion");
    let n_cards = desktop
        .exec(
            "return document.querySelectorAll('section.session:not([hidden])').length",
            json!([]),
        )
        .await;
    assert_eq!(n_cards, 2, "both conversations are on screen");
    desktop.click(&format!("{web_card} .messages")).await;

    // Typing the brief's words offers the brief's template first; one click inserts it.
    desktop
        .type_text(&format!("{web_card} textarea.composer-input"), ORDER_DELAY)
        .await;
    desktop
        .wait_text(
            &format!(
                "{web_card} .suggestions[data-for=\"{ORDER_DELAY}\"] li:first-child .suggestion"
            ),
            ORDER_DELAY_REPLY,
        )
        .await;
    desktop
        .click(&format!(
            "{web_card} .suggestions li:first-child .suggestion"
        ))
        .await;
    let draft = desktop
        .exec(
            "return document.querySelector(arguments[0] + ' textarea.composer-input').value",
            json!([web_card]),
        )
        .await;
    assert_eq!(draft, ORDER_DELAY_REPLY);
    desktop
        .type_text(&format!("{web_card} textarea.composer-input"), ENTER)
        .await;
    chat.wait_text("#messages li.msg[data-sender='agent']", ORDER_DELAY_REPLY)
        .await;

    // An unspaced Chinese question finds its article.
    desktop.type_text("#kb-query", "订单一直没发货怎么办").await;
    desktop.click("#kb-go").await;
    desktop
        .wait_visible("#kb-results li[data-article-id='kb-zh-order-delay']")
        .await;
    let first_hits = desktop
        .exec(
            "return [...document.querySelectorAll('#kb-results li[data-article-id]')].slice(0, 3).map(li => li.dataset.articleId)",
            json!([]),
        )
        .await;
    assert!(
        first_hits.to_string().contains("kb-zh-order-delay"),
        "{first_hits}"
    );

    // A ticket set to solved in the desktop turns solved on the customer's page, with no reload.
    chat.exec("window.notReloaded = true", json!([])).await;
    let pending = chat
        .wait(
            "the customer's pending ticket",
            "const li = document.querySelector('#tickets li[data-status=\"pending\"]'); return li && li.dataset.ticketId;",
            json!([]),
        )
        .await;
    let ticket = pending.as_str().unwrap().to_string();
    desktop
        .choose(
            &format!("select.ticket-status[data-ticket-id='{ticket}']"),
            "solved",
        )
        .await;
    chat.wait_visible(&format!(
        "#tickets li[data-ticket-id='{ticket}'][data-status='solved']"
    ))
    .await;
    assert_eq!(
        chat.exec("return window.notReloaded === true", json!([]))
            .await,
        true
    );

    // A ticket created from the session appears on the customer's page live.
    desktop
        .type_text("#ticket-subject", "订单 #20231020 物流延迟")
        .await;
    desktop
        .type_text(
            "#ticket-description",
            "客户询问订单何时送达,已联系物流加急。",
        )
        .await;
    desktop.click("#ticket-create").await;
    chat.wait_text("#tickets", "订单 #20231020 物流延迟").await;

    // What Chen Jie used is in his usage (docs/reports.md): two
    // suggestions inserted (Alt+1, a click), the ticket he opened, the
    // knowledge-base and ticket panels.
    let admin = server.token("ops", Role::Admin);
    let mut usage = Value::Null;
    for _ in 0..100 {
        let report = server.get_json("/api/v1/reports/agents", &admin).await;
        usage = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["agent"] == "chen.jie")
            .map(|row| row["usage"].clone())
            .unwrap_or(Value::Null);
        if usage["suggestion_inserted"] == 2
            && usage["ticket_created"] == 1
            && usage["panel_used:kb"] == 1
            && usage["panel_used:tickets"] == 1
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(usage["suggestion_inserted"], 2, "{usage}");
    assert_eq!(usage["ticket_created"], 1, "{usage}");
    assert_eq!(usage["panel_used:kb"], 1, "once a minute at most: {usage}");
    assert_eq!(usage["panel_used:tickets"], 1, "{usage}");

    assert_eq!(unlabelled_controls(&desktop).await, Vec::<String>::new());
    assert_eq!(unlabelled_controls(&chat).await, Vec::<String>::new());
    desktop.screenshot(&screenshot("desktop.png")).await;
    // Wide enough for the tickets beside the conversation (on a phone they
    // are below it).
    chat.resize(1100, 720).await;
    chat.screenshot(&screenshot("chat.png")).await;
    chat.resize(420, 860).await;

    // A reload of the chat, with an agent message sent meanwhile, shows the
    // whole conversation again, exactly once.
    let before = chat_messages(&chat).await;
    assert_eq!(before.len(), 3, "{before:?}");
    chat.reload().await;
    desktop
        .type_text(
            &format!("{web_card} textarea.composer-input"),
            &format!("Anything else I can help with?{ENTER}"),
        )
        .await;
    chat.wait_visible("#connection[data-state='open']").await;
    chat.wait_text("#messages li.msg[data-sender='agent']", "Anything else")
        .await;
    let after = chat_messages(&chat).await;
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "nothing lost or reordered"
    );
    let mut seqs: Vec<&String> = after.iter().map(|(_, seq, _)| seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), after.len(), "no message twice: {after:?}");
    assert_eq!(
        chat.exec("return window.notReloaded === true", json!([]))
            .await,
        false
    );

    // A reload of the desktop brings both conversations back with their history.
    let card_messages = format!("{web_card} .messages li.msg:not(.system)");
    let before_reload = count(&desktop, &card_messages).await;
    desktop.reload().await;
    desktop.wait_visible("#connection[data-state='open']").await;
    desktop
        .wait_text(&format!("{web_card} .messages"), "Anything else")
        .await;
    desktop
        .wait_visible(&format!("{app_card} .badge.channel[data-channel='app']"))
        .await;
    assert_eq!(count(&desktop, &card_messages).await, before_reload);

    // Wrap-up with a disposition opens the rating; the agent sees the score,
    // then closes.
    desktop
        .choose(&format!("{web_card} select.disposition"), "follow_up")
        .await;
    desktop
        .type_text(&format!("{web_card} input.wrap-note"), "物流加急")
        .await;
    desktop.click(&format!("{web_card} button.wrap-up")).await;
    chat.wait_visible("#rating button[data-score='5']").await;
    chat.click("#rating button[data-score='5']").await;
    chat.click("#rating-submit").await;
    chat.wait_visible("#rating-done").await;
    desktop
        .wait_visible(&format!("{web_card} li.msg.system[data-type='rated']"))
        .await;
    desktop.click(&format!("{web_card} button.close")).await;
    desktop
        .wait_visible(&format!("{web_card} .session-state[data-state='closed']"))
        .await;
    chat.wait_visible("#messages li.msg.system[data-type='closed']")
        .await;
    let summary = server
        .server
        .switchboard()
        .session(session_id(&web_session))
        .await
        .unwrap()
        .summary;
    assert_eq!(
        summary.as_deref(),
        Some("[需跟进] 物流加急"),
        "the disposition and note"
    );

    // The app conversation is transferred to a group: it leaves the desktop's hands.
    desktop
        .choose(
            &format!("{app_card} select.transfer-target"),
            "group:phone_support",
        )
        .await;
    desktop.click(&format!("{app_card} button.transfer")).await;
    desktop
        .wait_visible(&format!(
            "{app_card} .session-state[data-state='transferred']"
        ))
        .await;
    app_customer
        .wait_for("the transfer", |frame| frame["type"] == "transferred")
        .await;

    desktop.quit().await;
    chat.quit().await;
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_role_layouts_differ() {
    let server = server().await;
    let driver = Driver::start().await;
    let junior = driver.browser("en-US", 1500, 1000).await;
    let expert = driver.browser("en-US", 1500, 1000).await;
    let supervisor = driver.browser("zh-CN", 1500, 1000).await;
    open_desktop(&junior, &server, "chen.jie", Role::Agent).await;
    open_desktop(&expert, &server, "zhang.wei", Role::Agent).await;
    open_desktop(&supervisor, &server, "wang.min", Role::Supervisor).await;

    // The expert takes a web conversation (default group: zhang.wei is the
    // only available member).
    go_available(&expert).await;
    let mut customer = server.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer
        .say(json!({}), "c-1", "My parcel is late, 快递还没到")
        .await;
    let session = session_of(&ack);
    expert
        .click(&format!(
            "#offers li.offer[data-session='{session}'] button.accept"
        ))
        .await;
    expert
        .wait_visible("section.session .session-state[data-state='assigned']")
        .await;

    // Away with a reason shows on the agent's desktop and the supervisor's wallboard.
    junior.choose("#presence-select", "away").await;
    junior.type_text("#away-reason", "lunch").await;
    junior.click("#presence-apply").await;
    junior
        .wait_text("#presence-state[data-state='away']", "lunch")
        .await;

    // Junior: the basic ticket entry only.
    assert!(present(&junior, "#ticket-form #ticket-subject").await);
    assert!(!present(&junior, "#ticket-priority").await);
    assert!(!present(&junior, "#diagnostics").await);
    assert!(!present(&junior, "#wallboard").await);
    // Expert: diagnostics with the timeline and the routing decision.
    assert!(present(&expert, "#ticket-priority").await);
    assert!(!present(&expert, "#wallboard").await);
    expert.wait_text("#routing-rule", "everyone_else").await;
    expert
        .wait_visible("#routing-steps li[data-group='default']")
        .await;
    expert.wait_visible("#timeline li[data-type='offer']").await;
    expert
        .wait_visible("#timeline li[data-type='assigned']")
        .await;
    // Supervisor: the wallboard with queues, agents by state and service level.
    assert!(present(&supervisor, "#diagnostics").await);
    supervisor
        .wait_visible("#wallboard tr[data-group='default'] .service-level")
        .await;
    supervisor
        .wait_text("#wallboard tr[data-group='default'] .service-level", "100%")
        .await;
    // Over the last 15 minutes too, with the hour's sparkline drawn.
    supervisor
        .wait_text("#wallboard tr[data-group='default'] .sl-15m", "100%")
        .await;
    supervisor
        .wait(
            "a point on the default group's sparkline",
            "return document.querySelectorAll(\"#wallboard tr[data-group='default'] .sl-hour svg.sparkline .level\").length > 0",
            json!([]),
        )
        .await;
    supervisor
        .wait_visible("#wallboard-agents li[data-agent='zhang.wei'][data-activity='busy']")
        .await;
    supervisor
        .wait_visible("#wallboard-agents li[data-agent='chen.jie'][data-activity='away']")
        .await;
    supervisor
        .wait_visible("#wallboard tr[data-group='default'] .by-state .badge[data-state='busy']")
        .await;

    expert.fit_height().await;
    expert.screenshot(&screenshot("desktop-expert.png")).await;
    supervisor
        .screenshot(&screenshot("desktop-supervisor.png"))
        .await;
    junior.quit().await;
    expert.quit().await;
    supervisor.quit().await;
    server.server.shutdown().await.unwrap();
}

/// A supervisor steers from the desktop: forces an agent away (the agent's
/// desktop says who and why), moves a waiting customer to another group
/// and raises their priority; each action is in the audit log with its
/// reason, and agents have no such controls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_forces_an_agent_away_and_moves_a_waiting_customer_from_the_desktop() {
    let server = server().await;
    let driver = Driver::start().await;
    let agent = driver.browser("en-US", 1500, 900).await;
    let supervisor = driver.browser("en-US", 1500, 1000).await;
    open_desktop(&agent, &server, "chen.jie", Role::Agent).await;
    open_desktop(&supervisor, &server, "wang.min", Role::Supervisor).await;
    go_available(&agent).await;
    assert!(!present(&agent, "#control").await);

    // Chen Jie is forced away, with the reason on his desktop.
    supervisor
        .wait(
            "chen.jie in the presence list",
            "return !!document.querySelector(\"#control-presence-agent option[value='chen.jie']\")",
            json!([]),
        )
        .await;
    supervisor
        .choose("#control-presence-agent", "chen.jie")
        .await;
    supervisor.choose("#control-presence", "away").await;
    supervisor
        .type_text("#control-reason", "stuck: not answering offers")
        .await;
    supervisor.click("#control-apply-presence").await;
    supervisor
        .wait_text("#control-status", "chen.jie set to Away")
        .await;
    agent
        .wait_text("#presence-forced", "supervisor:wang.min set you to Away")
        .await;
    agent
        .wait_text("#presence-forced", "stuck: not answering offers")
        .await;
    agent
        .wait_visible("#presence-state[data-state='away']")
        .await;

    // Nobody in default takes offers now: the customer waits there, and
    // the supervisor moves them to gold_service with a higher priority.
    let mut customer = server.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer.say(json!({}), "c-1", "anyone there?").await;
    let session = session_of(&ack);
    supervisor
        .wait(
            "the waiting session in the list",
            "return !!document.querySelector(`#control-session option[value='${arguments[0]}']`)",
            json!([session]),
        )
        .await;
    supervisor.choose("#control-session", &session).await;
    supervisor.choose("#control-group", "gold_service").await;
    supervisor.click("#control-reassign").await;
    supervisor
        .wait_text("#control-status", "Give a reason")
        .await;
    supervisor
        .type_text("#control-reason", "default is short-staffed")
        .await;
    supervisor.click("#control-reassign").await;
    supervisor.wait_text("#control-status", "reassigned").await;
    supervisor
        .type_text("#control-reason", "waited long enough")
        .await;
    supervisor.click("#control-set-priority").await;
    supervisor
        .wait_text("#control-status", "now has priority 10")
        .await;
    supervisor
        .wait_text("#control-session", "gold_service")
        .await;
    supervisor
        .screenshot(&screenshot("desktop-control.png"))
        .await;

    let admin = server.token("ops", Role::Admin);
    let detail = server.get_json("/api/v1/groups/gold_service", &admin).await;
    let waiting = &detail["queue"]["waiting"][0];
    assert_eq!(waiting["session_id"], session.as_str(), "{detail}");
    assert_eq!(waiting["priority"], 10, "{detail}");
    let audit = server.get_json("/api/v1/audit", &admin).await;
    let entries: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (lang(e["action"].clone()), lang(e["reason"].clone())))
        .collect();
    assert_eq!(
        entries,
        [
            ("reprioritise".to_string(), "waited long enough".to_string()),
            ("reassign".into(), "default is short-staffed".into()),
            ("set_presence".into(), "stuck: not answering offers".into()),
        ]
    );
    // The customer's chat knows nothing of it.
    let customer_token = server.token("cust-003", Role::Customer);
    let record = server
        .get_json(&format!("/api/v1/sessions/{session}"), &customer_token)
        .await;
    assert!(!record.to_string().contains("steered"), "{record}");
    agent.quit().await;
    supervisor.quit().await;
    server.server.shutdown().await.unwrap();
}

/// A supervisor opens a live chat from the desktop: reads along (the
/// customer's words appear), whispers (the agent sees it, the customer's
/// page never does) and barges in (the customer sees it, marked as the
/// supervisor's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_reads_along_whispers_and_barges_into_a_chat_from_the_desktop() {
    let server = server().await;
    // Replies in `default` are due 4 s after the agent takes the chat.
    let admin = server.token("ops", Role::Admin);
    let rules_url = server.http_url("/api/v1/rules");
    let http = reqwest::Client::new();
    let rules = http
        .get(&rules_url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let replaced = http
        .put(&rules_url)
        .bearer_auth(&admin)
        .header("Content-Type", "application/toml")
        .body(format!(
            "{rules}\n[[response]]\ngroup = \"default\"\nfirst = \"4s\"\n"
        ))
        .send()
        .await
        .unwrap();
    assert!(replaced.status().is_success(), "{}", replaced.status());
    let driver = Driver::start().await;
    let agent = driver.browser("en-US", 1400, 900).await;
    let supervisor = driver.browser("en-US", 1500, 1100).await;
    let chat = driver.browser("en-US", 420, 860).await;
    open_desktop(&agent, &server, "chen.jie", Role::Agent).await;
    go_available(&agent).await;
    open_chat(&chat, &server, "cust-003").await;
    chat.type_text("#message-input", &format!("My parcel is late{ENTER}"))
        .await;
    agent.click("#offers li.offer button.accept").await;
    agent
        .wait_visible("section.session .session-state[data-state='assigned']")
        .await;
    let session = lang(
        agent
            .exec(
                "return document.querySelector('section.session:not([hidden])').dataset.session",
                json!([]),
            )
            .await,
    );
    let card = format!("section.session[data-session='{session}']");
    // The agent's card counts down to the first reply, then says it is late.
    agent
        .wait_text(&format!("{card} .response-due"), "First reply due in")
        .await;
    agent
        .wait_visible(&format!("{card} .response-due[data-overdue='true']"))
        .await;
    agent
        .wait_text(
            &format!("{card} li.msg.system[data-breach='first']"),
            "First reply overdue",
        )
        .await;
    agent
        .screenshot(&screenshot("desktop-sla-breach.png"))
        .await;

    // Listen: the conversation so far and what the customer writes next.
    open_desktop(&supervisor, &server, "wang.min", Role::Supervisor).await;
    supervisor
        .wait(
            "the live session in the list",
            "return !!document.querySelector(`#control-live option[value='${arguments[0]}']`)",
            json!([session]),
        )
        .await;
    supervisor.choose("#control-live", &session).await;
    supervisor.choose("#control-monitor-mode", "listen").await;
    supervisor.click("#control-monitor").await;
    supervisor
        .wait_text(&format!("{card} .messages"), "My parcel is late")
        .await;
    supervisor
        .wait_visible(&format!("{card} .badge.monitoring[data-mode='listen']"))
        .await;
    chat.type_text("#message-input", &format!("Hello?{ENTER}"))
        .await;
    supervisor
        .wait_text(&format!("{card} .messages"), "Hello?")
        .await;

    // Whisper: to the agent only.
    supervisor
        .choose(&format!("{card} .monitor-mode"), "whisper")
        .await;
    supervisor
        .wait_visible(&format!("{card} .badge.monitoring[data-mode='whisper']"))
        .await;
    supervisor
        .type_text(
            &format!("{card} textarea.composer-input"),
            &format!("Offer the express refund{ENTER}"),
        )
        .await;
    agent
        .wait_text(
            &format!("{card} li.msg.whisper"),
            "Offer the express refund",
        )
        .await;
    agent
        .wait_text(&format!("{card} li.msg.whisper"), "Whisper from wang.min")
        .await;

    // Barge: the customer sees it, marked.
    supervisor
        .choose(&format!("{card} .monitor-mode"), "barge")
        .await;
    supervisor
        .wait(
            "the barge target",
            "return !!document.querySelector(arguments[0])",
            json!([format!("{card} .monitor-to option[value='customer']")]),
        )
        .await;
    supervisor
        .choose(&format!("{card} .monitor-to"), "customer")
        .await;
    supervisor
        .type_text(
            &format!("{card} textarea.composer-input"),
            &format!("I am the duty manager; your refund goes out today.{ENTER}"),
        )
        .await;
    chat.wait_text(
        "#messages li.msg[data-sender='supervisor']",
        "your refund goes out today",
    )
    .await;
    chat.wait_text(
        "#messages li.msg[data-sender='supervisor'] .sender",
        "Supervisor",
    )
    .await;
    agent
        .wait_text(
            &format!("{card} li.msg[data-sender='supervisor']"),
            "duty manager",
        )
        .await;
    supervisor.fit_height().await;
    supervisor
        .screenshot(&screenshot("desktop-monitor.png"))
        .await;
    chat.screenshot(&screenshot("chat-barge.png")).await;

    // The customer's page never showed the whisper or the monitoring.
    let page = lang(chat.exec("return document.body.innerText", json!([])).await);
    assert!(!page.contains("express refund"), "{page}");
    assert!(!page.to_lowercase().contains("monitor"), "{page}");
    // Nor did a reload (the history from the server).
    chat.reload().await;
    chat.wait_text("#messages", "your refund goes out today")
        .await;
    let page = lang(chat.exec("return document.body.innerText", json!([])).await);
    assert!(!page.contains("express refund"), "{page}");
    agent.quit().await;
    supervisor.quit().await;
    chat.quit().await;
    server.server.shutdown().await.unwrap();
}

/// A caller on a trunk reaches Liu Yang's desktop: the desktop shows the
/// phone registered, the agent accepts the offer in the page while the
/// phone still rings (it picks up four seconds later and the call
/// connects), then Hold, Resume and Hang up in the call bar control the
/// call: the session's history has them, and the caller's and the phone's
/// sipp runs end successfully because each got its BYE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_call_is_accepted_held_resumed_and_hung_up_in_the_desktop() {
    const NUMBER: &str = "+8613900000002"; // Zhao Lei's phone (demo data)
    let server = phone_server(|config| {
        config.routing.offer_timeout_ms = 60_000;
        config.routing.queue_update_ms = 500;
    })
    .await;
    let driver = Driver::start().await;
    let desktop = driver.browser("en-US", 1500, 1000).await;
    open_desktop(&desktop, &server, "liu.yang", Role::Agent).await;
    desktop
        .wait_text(
            "#phone-state[data-registered='false']",
            "Phone: not registered",
        )
        .await;
    let phone = phone(&server, "liu.yang", "agent_answer_late.xml").await;
    desktop
        .wait_text("#phone-state[data-registered='true']", "Phone: registered")
        .await;
    go_available(&desktop).await;

    let (caller, _caller_rtp) = caller_until_bye(&server, NUMBER);
    desktop.wait_text("#offers li.offer", "Zhao Lei").await;
    let session = desktop
        .exec(
            "return document.querySelector('#offers li.offer').dataset.session",
            json!([]),
        )
        .await;
    let session = session.as_str().unwrap().to_string();
    let card = format!("section.session[data-session='{session}']");
    desktop.click("#offers li.offer button.accept").await;
    desktop
        .wait_visible(&format!("{card} .session-state[data-state='assigned']"))
        .await;
    // Accepted in the desktop first: the phone keeps ringing until picked up.
    desktop
        .wait_visible(&format!("{card} .call-state[data-state='ringing']"))
        .await;
    desktop
        .wait_visible(&format!("{card} .call-state[data-state='talking']"))
        .await;
    desktop
        .wait_text(&format!("{card} .call-from"), NUMBER)
        .await;
    desktop
        .wait_text(
            &format!("{card} li.msg.system[data-call='answered']"),
            "Call answered by Liu Yang",
        )
        .await;
    // The talk timer runs.
    desktop
        .wait_text(&format!("{card} .call-timer"), "0:02")
        .await;
    desktop.wait_text("#customer-body", "Zhao Lei").await;
    assert_eq!(unlabelled_controls(&desktop).await, Vec::<String>::new());
    desktop.screenshot(&screenshot("desktop-call.png")).await;

    let hold = format!("{card} button.call-hold");
    desktop.click(&format!("{hold}[data-action='hold']")).await;
    desktop
        .wait_visible(&format!("{card} .call-state[data-state='held']"))
        .await;
    desktop
        .wait_text(
            &format!("{card} li.msg.system[data-call='held']"),
            "On hold",
        )
        .await;
    desktop
        .click(&format!("{hold}[data-action='resume']"))
        .await;
    desktop
        .wait_visible(&format!("{card} .call-state[data-state='talking']"))
        .await;
    desktop
        .wait_visible(&format!("{card} li.msg.system[data-call='resumed']"))
        .await;
    desktop.click(&format!("{card} button.call-hang-up")).await;
    desktop
        .wait_visible(&format!("{card} .call-state[data-state='ended']"))
        .await;
    desktop
        .wait_text(
            &format!("{card} li.msg.system[data-call='ended']"),
            "Call ended by the agent · 0:",
        )
        .await;
    desktop
        .wait_visible(&format!("{card} .session-state[data-state='wrap_up']"))
        .await;
    let disabled = desktop
        .exec(
            "return [...document.querySelectorAll(arguments[0] + ' .call-bar button')].map(b => b.disabled)",
            json!([card]),
        )
        .await;
    assert_eq!(
        disabled,
        json!([true, true]),
        "nothing left to hold or hang up"
    );

    caller.await.unwrap().assert_success();
    phone.uas.await.unwrap().assert_success();
    let supervisor = server.token("wang.min", Role::Supervisor);
    let record = server
        .get_json(&format!("/api/v1/sessions/{session}"), &supervisor)
        .await;
    let story: Vec<String> = record["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| match event["type"].as_str().unwrap() {
            "call" => {
                let by = event["by"].as_str().map(|by| format!(" by {by}"));
                Some(format!(
                    "{}{}",
                    event["call"].as_str().unwrap(),
                    by.unwrap_or_default()
                ))
            }
            kind @ ("assigned" | "wrap_up") => Some(kind.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        story,
        [
            "started",
            "ringing",
            "assigned",
            "answered",
            "held",
            "resumed",
            "ended by agent",
            "wrap_up"
        ],
        "{record}"
    );
    desktop.quit().await;
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_to_an_sms_customer_show_their_delivery_and_a_refusal_is_a_notice() {
    let refused = (
        422,
        json!({"code": "blocked", "message": "the number has opted out of messages"}),
    );
    let (platform, url) = Platform::start(&[(200, json!({"id": "p-1"})), refused]).await;
    let server = TestServer::start(|config| {
        config.routing.offer_timeout_ms = 60_000;
        config.routing.queue_update_ms = 500;
        config.channels = vec![crate::common::platform::account(url)];
    })
    .await;
    let driver = Driver::start().await;
    let desktop = driver.browser("en-US", 1500, 1000).await;
    open_desktop(&desktop, &server, "chen.jie", Role::Agent).await;
    go_available(&desktop).await;

    let (status, answer) = crate::common::platform::post_signed(
        &server,
        &json!({"id": "sms-9", "from": "+8613912340009", "text": "Is my refund done?", "sent_at": "2026-01-05T10:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let session = answer["accepted"][0]["session"]
        .as_str()
        .unwrap()
        .to_string();
    let card = format!("section.session[data-session='{session}']");
    desktop.wait_text("#offers li.offer", "SMS").await;
    desktop.click("#offers li.offer button.accept").await;
    desktop
        .wait_text(&format!("{card} .badge.channel[data-channel='sms']"), "SMS")
        .await;
    let input = format!("{card} textarea.composer-input");
    desktop
        .type_text(&input, &format!("Yes, it was paid back today.{ENTER}"))
        .await;
    desktop
        .wait_text(
            &format!("{card} li.msg.mine .delivery[data-state='sent']"),
            "Sent to sms-gw",
        )
        .await;
    desktop
        .type_text(&input, &format!("Anything else I can do?{ENTER}"))
        .await;
    desktop
        .wait_text(
            &format!("{card} li.msg.mine .delivery[data-state='failed']"),
            "Not delivered",
        )
        .await;
    desktop
        .wait_text(
            &format!("{card} li.msg.system[data-delivery='failed']"),
            "sms-gw refused this reply; the customer did not get it: the number has opted out of messages",
        )
        .await;
    assert_eq!(unlabelled_controls(&desktop).await, Vec::<String>::new());
    desktop
        .screenshot(&screenshot("desktop-delivery.png"))
        .await;
    let texts: Vec<Value> = platform
        .received()
        .iter()
        .map(|body| body["text"].clone())
        .collect();
    assert_eq!(
        texts,
        [
            json!("Yes, it was paid back today."),
            json!("Anything else I can do?")
        ]
    );
}

/// The supervisor's reports of today, drawn from this run's contacts: an
/// answered web chat, a customer who left, a call still waiting; the
/// service-level, volume and abandonment charts, the agents' and routing
/// tables (screenshot for the README).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_reads_todays_reports_drawn_as_charts() {
    use engine::channel::Channel;
    use engine::envelope::Envelope;
    use engine::ids::{AgentId, CustomerId};
    use engine::presence::PresenceRequest;

    let server = server().await;
    let switchboard = server.server.switchboard();
    let envelope = |channel, external_id: &str, text: &str| Envelope {
        channel,
        customer_id: external_id.into(),
        message: text.into(),
        timestamp: chrono::Utc::now(),
        client_message_id: Some(format!("{external_id}-{text}")),
        display_name: None,
    };
    let li_na = AgentId::new("li.na");
    let mut offers = switchboard.subscribe_agent(&li_na);
    switchboard
        .set_presence(&li_na, PresenceRequest::Available)
        .await
        .unwrap();
    let answered = switchboard
        .customer_message(envelope(Channel::Web, "wf-visitor-77", "where is my order"))
        .await
        .unwrap()
        .session;
    loop {
        let event = offers.recv().await.expect("subscription open");
        if matches!(event.kind, actors::EventKind::Offered { .. }) {
            assert_eq!(event.session, answered);
            break;
        }
    }
    switchboard.accept(&li_na, answered).await.unwrap();
    switchboard
        .agent_message(&li_na, answered, "on its way".into(), None)
        .await
        .unwrap();
    switchboard.close(&li_na, answered, None).await.unwrap();
    switchboard
        .set_presence(&li_na, PresenceRequest::Offline)
        .await
        .unwrap();
    let left = switchboard
        .customer_message(envelope(Channel::Web, "el-visitor-9", "hello?"))
        .await
        .unwrap()
        .session;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    switchboard
        .customer_leave(&CustomerId::new("cust-003"), left)
        .await
        .unwrap();
    switchboard
        .customer_message(envelope(Channel::Phone, "+8613900000002", "hello?"))
        .await
        .unwrap();
    switchboard.flush().await.unwrap();

    let driver = Driver::start().await;
    let supervisor = driver.browser("en-US", 1500, 1000).await;
    open_desktop(&supervisor, &server, "wang.min", Role::Supervisor).await;
    supervisor.click("#report-show").await;
    supervisor
        .wait_text("#report-status", "3 contacts that day")
        .await;
    // Volume: three contacts, by channel.
    let volume = supervisor
        .exec(
            "return [...document.querySelectorAll('#report-volume-chart rect.bar')]
               .map((bar) => [bar.dataset.channel, Number(bar.dataset.offered)])",
            json!([]),
        )
        .await;
    let mut by_channel: Vec<(String, u64)> = volume
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_u64().unwrap(),
            )
        })
        .collect();
    by_channel.sort();
    let web: u64 = by_channel
        .iter()
        .filter(|(c, _)| c == "web")
        .map(|(_, n)| n)
        .sum();
    let phone: u64 = by_channel
        .iter()
        .filter(|(c, _)| c == "phone")
        .map(|(_, n)| n)
        .sum();
    assert_eq!((web, phone), (2, 1), "{by_channel:?}");
    // Service level: the answered chat is a point at 100 % in gold_service;
    // every group with contacts has its dashed target.
    let levels = supervisor
        .exec(
            "const chart = document.querySelector('#report-sl-chart');
             return [chart.querySelectorAll('circle.sl-point, polyline.sl-line').length,
                     chart.querySelectorAll('line.target').length]",
            json!([]),
        )
        .await;
    assert_eq!(
        levels,
        json!([1, 3]),
        "one answered point; three groups' targets"
    );
    // Abandonment: the customer who left, in one bar.
    let abandoned = supervisor
        .exec(
            "return [...document.querySelectorAll('#report-abandon-chart g.abandon')]
               .reduce((sum, bar) => sum + Number(bar.dataset.abandoned), 0)",
            json!([]),
        )
        .await;
    assert_eq!(abandoned, json!(1));
    supervisor
        .wait_visible("#report-agents tr[data-agent='li.na']")
        .await;
    let li_na_row = supervisor
        .exec(
            "return [...document.querySelectorAll('#report-agents tr[data-agent=\"li.na\"] td')].map((td) => td.textContent)",
            json!([]),
        )
        .await;
    assert_eq!(li_na_row[0], "1", "answered: {li_na_row}");
    assert_eq!(li_na_row[1], "1", "within: {li_na_row}");
    let routes = supervisor
        .exec(
            "return [...document.querySelectorAll('#report-routes tbody tr')]
               .reduce((sum, tr) => sum + Number(tr.children[3].textContent), 0)",
            json!([]),
        )
        .await;
    assert_eq!(routes, json!(3), "each contact entered one step");
    let answered_by_layout = supervisor
        .exec(
            "return [...document.querySelectorAll('#report-usage tbody tr')]
               .reduce((sum, tr) => sum + Number(tr.children[2].textContent), 0)",
            json!([]),
        )
        .await;
    assert_eq!(
        answered_by_layout,
        json!(1),
        "li.na's answer, in her layout"
    );
    supervisor
        .exec(
            "document.querySelector('#reports').scrollIntoView()",
            json!([]),
        )
        .await;
    supervisor
        .screenshot(&screenshot("desktop-reports.png"))
        .await;
    supervisor.quit().await;
    server.server.shutdown().await.unwrap();
}
