use super::*;

fn article(id: &str, language: &str, title: &str, body: &str) -> Article {
    Article {
        id: ArticleId::new(id),
        language: language.into(),
        title: title.into(),
        body: body.into(),
        tags: Vec::new(),
        updated_at: 0,
    }
}

#[test]
fn validation_names_the_field() {
    let check = |article: Article, expected: Result<(), &str>| {
        let got = article
            .validated()
            .map(|_| ())
            .map_err(|err| err.to_string());
        assert_eq!(got, expected.map_err(str::to_owned));
    };
    check(article("kb-1", "zh-CN", "退款", "退款说明"), Ok(()));
    check(
        article("KB 1", "zh-CN", "退款", "x"),
        Err("invalid `id`: `KB 1` must be 1 to 64 of a-z, 0-9 or `-`"),
    );
    check(
        article("kb-1", "chinese", "退款", "x"),
        Err("invalid `language`: `chinese` is not a language tag such as zh-CN or en"),
    );
    check(
        article("kb-1", "en", " ", "x"),
        Err("invalid `title`: must not be empty"),
    );
    check(
        article("kb-1", "en", "t", ""),
        Err("invalid `body`: must not be empty"),
    );
}

fn index() -> KbIndex {
    let index = KbIndex::new().unwrap();
    for article in [
        article(
            "kb-zh-delay",
            "zh-CN",
            "订单延迟发货怎么办",
            "如果您的订单超过48小时仍未发货，可能是仓库备货或物流高峰导致延迟。您可以在订单详情查看物流状态。",
        ),
        article(
            "kb-zh-refund",
            "zh-CN",
            "退款多久到账",
            "退款审核通过后，原路退回，一般1到7个工作日到账。",
        ),
        article(
            "kb-en-password",
            "en",
            "Reset your password",
            "Forgot your password? Use the reset link on the sign-in page; the email arrives within minutes.",
        ),
        article(
            "kb-en-refund",
            "en",
            "Refunds and returns",
            "Refunds are issued to the original payment method once the returned item is inspected.",
        ),
    ] {
        index.upsert(article).unwrap();
    }
    index
}

fn top(index: &KbIndex, query: &str) -> Vec<String> {
    index
        .search(query, 3, None)
        .unwrap()
        .into_iter()
        .map(|hit| hit.id.to_string())
        .collect()
}

#[test]
fn unspaced_chinese_finds_its_article() {
    let index = index();
    // One phrase with no spaces: a phrase query would find nothing.
    assert_eq!(top(&index, "订单延迟")[0], "kb-zh-delay");
    assert_eq!(top(&index, "我的退款什么时候到账")[0], "kb-zh-refund");
    assert_eq!(top(&index, "物流 延迟")[0], "kb-zh-delay");
}

#[test]
fn english_with_stemming_and_typos() {
    let index = index();
    assert_eq!(top(&index, "resetting passwords")[0], "kb-en-password");
    assert_eq!(top(&index, "pasword reset")[0], "kb-en-password");
    assert_eq!(top(&index, "refnds")[0], "kb-en-refund");
}

#[test]
fn hits_carry_highlighted_snippets() {
    let index = index();
    let hits = index.search("物流", 3, None).unwrap();
    assert_eq!(hits[0].id.as_str(), "kb-zh-delay");
    assert!(
        hits[0].snippet.contains("<b>物流</b>"),
        "{}",
        hits[0].snippet
    );
    let hits = index.search("password", 3, None).unwrap();
    assert!(
        hits[0].snippet.contains("<b>password</b>"),
        "{}",
        hits[0].snippet
    );
}

#[test]
fn the_index_follows_writes() {
    let index = index();
    let mut changed = index.get(&ArticleId::new("kb-zh-refund")).unwrap();
    changed.body = "退货入库后处理退款，积分同时扣回。".into();
    index.upsert(changed).unwrap();
    assert_eq!(top(&index, "积分")[0], "kb-zh-refund");
    assert!(top(&index, "原路退回").is_empty());
    assert!(index.remove(&ArticleId::new("kb-zh-refund")).unwrap());
    assert!(top(&index, "积分").is_empty());
    assert!(!index.remove(&ArticleId::new("kb-zh-refund")).unwrap());
    assert_eq!(index.len(), 3);
}

#[test]
fn language_filter_and_empty_queries() {
    let index = index();
    let hits = index.search("refund 退款", 5, Some("en")).unwrap();
    assert!(hits.iter().all(|hit| hit.language == "en"), "{hits:?}");
    assert!(index.search("  ，。 ", 5, None).unwrap().is_empty());
}
