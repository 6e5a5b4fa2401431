use super::*;

const ORDER_DELAY: &str = "您的订单因物流原因延迟,预计3天内送达,我们已为您优先处理。";

fn template(id: &str, title: &str, body: &str, triggers: &[&str]) -> ReplyTemplate {
    ReplyTemplate {
        id: TemplateId::new(id),
        language: "zh-CN".into(),
        title: title.into(),
        body: body.into(),
        triggers: triggers.iter().map(|t| t.to_string()).collect(),
        updated_at: 0,
    }
}

fn library() -> Vec<ReplyTemplate> {
    vec![
        template(
            "tpl-greeting",
            "问候",
            "{{customer.name}}您好,我是客服{{agent.name}},很高兴为您服务。",
            &["你好", "在吗"],
        ),
        template(
            "tpl-order-delay",
            "订单延迟安抚",
            ORDER_DELAY,
            &["订单延迟", "物流延迟", "还没发货"],
        ),
        template(
            "tpl-order-status",
            "订单状态查询",
            "请提供订单号,我帮您查询。",
            &["订单状态", "查订单"],
        ),
        template(
            "tpl-refund",
            "退款进度",
            "退款已提交,1-7个工作日原路退回。",
            &["退款", "退钱"],
        ),
    ]
}

fn vars() -> TemplateVars {
    TemplateVars::from([
        ("customer.name", "王芳".to_owned()),
        ("agent.name", "李娜".to_owned()),
    ])
}

/// The first `n` suggested ids for `input`.
fn check(input: &str, expected: &[&str]) {
    let got: Vec<String> = suggest(&library(), input, &vars(), expected.len().max(1))
        .into_iter()
        .map(|s| s.template_id.to_string())
        .collect();
    assert_eq!(got, expected, "for {input:?}");
}

#[test]
fn the_briefs_example_comes_first() {
    let first = &suggest(&library(), "订单延迟", &vars(), 3)[0];
    assert_eq!(first.template_id.as_str(), "tpl-order-delay");
    assert_eq!(first.text, ORDER_DELAY);
    assert_eq!(first.trigger.as_deref(), Some("订单延迟"));
}

#[test]
fn ranking_by_trigger_prefix_and_similarity() {
    check("客户说他的订单延迟了三天", &["tpl-order-delay"]);
    check("订单 延迟!", &["tpl-order-delay"]);
    // An agent halfway through typing a trigger.
    check("订单延", &["tpl-order-delay"]);
    check("我想退款", &["tpl-refund"]);
    check("帮我查一下订单状态", &["tpl-order-status"]);
    // Shares no character pair with anything.
    check("天气不错", &[]);
    check("  ", &[]);
}

#[test]
fn variables_fill_and_report_what_is_missing() {
    let (text, missing) = fill("{{customer.name}}您好,我是{{ agent.name }}。", &vars());
    assert_eq!((text.as_str(), missing.len()), ("王芳您好,我是李娜。", 0));
    let (text, missing) = fill("{{customer.name}}您好,会话{{session.id}}", &vars());
    assert_eq!(text, "王芳您好,会话");
    assert_eq!(missing, vec!["session.id"]);
    assert_eq!(fill("no {{closing", &vars()).0, "no {{closing");
}

#[test]
fn validation_names_unknown_variables() {
    let bad = template("tpl-x", "x", "hi {{customer.phone}}", &["x"]);
    let err = bad.validated().unwrap_err().to_string();
    assert!(
        err.starts_with("invalid `body`: unknown variable `{{customer.phone}}`"),
        "{err}"
    );
    let good = template("tpl-x", "x", "hi {{customer.name}}", &[" x ", "x"]);
    assert_eq!(good.validated().unwrap().triggers, vec!["x"]);
}
