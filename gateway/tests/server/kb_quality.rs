//! Search quality on the demo knowledge base: a labelled set of queries
//! (`gateway/demo/kb_queries.toml`: Chinese, unspaced Chinese, English,
//! English with typos), each naming the article that must be in the top 3.
//! Prints the hit rate per kind and asserts at least 90 % overall.
//!
//! `cargo test -p gateway --test server kb_quality -- --nocapture` shows the table.

use std::collections::BTreeMap;

use engine::kb::KbIndex;
use gateway::demo::platform::{KB_TOML, parse_articles};
use serde::Deserialize;

#[derive(Deserialize)]
struct Queries {
    query: Vec<Query>,
}

#[derive(Deserialize)]
struct Query {
    text: String,
    kind: String,
    expect: String,
}

const TOP: usize = 3;
const REQUIRED_PCT: f64 = 90.0;

#[test]
fn expected_article_in_top_3_for_at_least_90_percent() {
    let articles = parse_articles(KB_TOML, 0).unwrap();
    let ids: Vec<String> = articles.iter().map(|a| a.id.to_string()).collect();
    let index = KbIndex::build(articles).unwrap();
    let queries: Queries = toml::from_str(include_str!("../../demo/kb_queries.toml")).unwrap();
    assert!(
        queries.query.len() >= 30,
        "the set has {} queries",
        queries.query.len()
    );

    let mut by_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut misses = Vec::new();
    for query in &queries.query {
        assert!(
            ids.contains(&query.expect),
            "`{}` expects unknown article {}",
            query.text,
            query.expect
        );
        let hits = index.search(&query.text, TOP, None).unwrap();
        let rank = hits.iter().position(|hit| hit.id.as_str() == query.expect);
        let tally = by_kind.entry(query.kind.as_str()).or_default();
        tally.1 += 1;
        match rank {
            Some(_) => tally.0 += 1,
            None => misses.push(format!(
                "  {:<12} {:<28} expected {}, got {:?}",
                query.kind,
                query.text,
                query.expect,
                hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>()
            )),
        }
    }
    let found: usize = by_kind.values().map(|(found, _)| found).sum();
    let total = queries.query.len();
    let pct = 100.0 * found as f64 / total as f64;
    println!("knowledge-base search: expected article in the top {TOP}");
    for (kind, (found, n)) in &by_kind {
        println!(
            "  {kind:<12} {found:>2}/{n:<2} ({:.0} %)",
            100.0 * *found as f64 / *n as f64
        );
    }
    println!("  {:<12} {found:>2}/{total:<2} ({pct:.1} %)", "all");
    for miss in &misses {
        println!("{miss}");
    }
    assert!(
        by_kind.len() >= 4,
        "every kind of query is in the set: {by_kind:?}"
    );
    assert!(
        pct >= REQUIRED_PCT,
        "{pct:.1} % < {REQUIRED_PCT} %; misses:\n{}",
        misses.join("\n")
    );
}
