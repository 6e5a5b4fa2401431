//! Full-text search over the articles: tantivy, in memory, with two analyzers
//! over every text — jieba for Chinese, a stemming one for English.
//!
//! Queries are not parsed with tantivy's `QueryParser`: it turns the jieba
//! tokens of an unspaced Chinese query ("订单延迟") into one phrase query,
//! which finds nothing unless the words sit next to each other in that order.
//! The query is analyzed with the same analyzers as the text and becomes a
//! `BooleanQuery` of `TermQuery`s (any token may match, more matches rank
//! higher), plus `FuzzyTermQuery`s for English words so that a typo still finds.
//!
//! The index holds ids only; the articles themselves stay in a map beside it
//! for results and snippets. Every write commits at once, so a search after
//! [`KbIndex::upsert`] returns sees the change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, RwLock};

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use thiserror::Error;

use super::Article;
use crate::ids::ArticleId;

/// The index failed (it is in memory: this is a bug or memory exhaustion).
#[derive(Debug, Error)]
#[error("knowledge-base index: {0}")]
pub struct KbError(String);

impl From<tantivy::TantivyError> for KbError {
    fn from(err: tantivy::TantivyError) -> Self {
        KbError(err.to_string())
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchHit {
    /// The article.
    pub id: ArticleId,
    /// Its title.
    pub title: String,
    /// Its language.
    pub language: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Relevance (BM25; only comparable within one search).
    pub score: f32,
    /// A fragment of the body around the matches, HTML-escaped, matches in `<b>`.
    pub snippet: String,
}

/// Tokens no search should match on: punctuation, whitespace and the most
/// common Chinese and English function words.
const STOP_WORDS: &[&str] = &[
    " ",
    "  ",
    "\n",
    "\t",
    "，",
    "。",
    "？",
    "！",
    "、",
    "；",
    "：",
    "“",
    "”",
    "‘",
    "’",
    "（",
    "）",
    "《",
    "》",
    "…",
    "—",
    ",",
    ".",
    "?",
    "!",
    ";",
    ":",
    "\"",
    "'",
    "(",
    ")",
    "-",
    "/",
    "的",
    "了",
    "吗",
    "呢",
    "吧",
    "啊",
    "我",
    "你",
    "您",
    "是",
    "在",
    "有",
    "和",
    "就",
    "都",
    "也",
    "要",
    "怎么",
    "怎样",
    "如何",
    "什么",
    "为什么",
    "可以",
    "能",
    "一个",
    "这个",
    "那个",
    "a",
    "an",
    "the",
    "to",
    "i",
    "my",
    "me",
    "is",
    "are",
    "how",
    "do",
    "does",
    "of",
    "and",
    "or",
    "for",
    "in",
    "on",
    "it",
    "what",
    "can",
    "you",
    "your",
    "with",
    "be",
    "why",
    "when",
    "where",
];

const ZH: &str = "kb_zh";
const EN: &str = "kb_en";
/// Longest token kept; longer ones are noise (URLs, hashes).
const MAX_TOKEN_BYTES: usize = 40;
/// Characters in a snippet.
const SNIPPET_CHARS: usize = 160;
/// Memory for the index writer (tantivy's minimum for one thread).
const WRITER_BYTES: usize = 15_000_000;

fn stop_words() -> Vec<String> {
    STOP_WORDS.iter().map(|word| word.to_string()).collect()
}

fn chinese_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(tantivy_jieba::JiebaTokenizer::new())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(stop_words()))
        .build()
}

fn english_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(stop_words()))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The same text indexed twice, once per analyzer.
#[derive(Clone, Copy)]
struct TextFields {
    zh: Field,
    en: Field,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    language: Field,
    title: TextFields,
    body: TextFields,
    tags: TextFields,
}

impl Fields {
    /// (fields, boost) for matching: a title match counts most.
    fn weighted(&self) -> [(TextFields, f32); 3] {
        [(self.title, 3.0), (self.tags, 2.0), (self.body, 1.0)]
    }
}

/// The searchable knowledge base.
pub struct KbIndex {
    fields: Fields,
    writer: Mutex<IndexWriter>,
    reader: IndexReader,
    articles: RwLock<BTreeMap<ArticleId, Article>>,
}

impl KbIndex {
    /// An empty index.
    pub fn new() -> Result<KbIndex, KbError> {
        let mut schema = Schema::builder();
        let text = |analyzer: &str| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(analyzer)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
        };
        let mut pair = |name: &str| TextFields {
            zh: schema.add_text_field(&format!("{name}_zh"), text(ZH)),
            en: schema.add_text_field(&format!("{name}_en"), text(EN)),
        };
        let title = pair("title");
        let body = pair("body");
        let tags = pair("tags");
        let fields = Fields {
            id: schema.add_text_field("id", STRING | STORED),
            language: schema.add_text_field("language", STRING),
            title,
            body,
            tags,
        };
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(ZH, chinese_analyzer());
        index.tokenizers().register(EN, english_analyzer());
        let writer = index.writer_with_num_threads(1, WRITER_BYTES)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(KbIndex {
            fields,
            writer: Mutex::new(writer),
            reader,
            articles: RwLock::new(BTreeMap::new()),
        })
    }

    /// An index of `articles`, committed once.
    pub fn build(articles: impl IntoIterator<Item = Article>) -> Result<KbIndex, KbError> {
        let index = KbIndex::new()?;
        index.write(articles.into_iter().map(Some).collect(), &[])?;
        Ok(index)
    }

    /// Adds or replaces an article; searchable when this returns.
    pub fn upsert(&self, article: Article) -> Result<(), KbError> {
        self.write(vec![Some(article)], &[])
    }

    /// Removes an article; false if there was none.
    pub fn remove(&self, id: &ArticleId) -> Result<bool, KbError> {
        let existed = self.get(id).is_some();
        self.write(Vec::new(), std::slice::from_ref(id))?;
        Ok(existed)
    }

    /// One article.
    pub fn get(&self, id: &ArticleId) -> Option<Article> {
        self.articles().get(id).cloned()
    }

    /// Every article, by id.
    pub fn list(&self) -> Vec<Article> {
        self.articles().values().cloned().collect()
    }

    /// How many articles.
    pub fn len(&self) -> usize {
        self.articles().len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn articles(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ArticleId, Article>> {
        self.articles
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self, upserts: Vec<Option<Article>>, removals: &[ArticleId]) -> Result<(), KbError> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| KbError("writer lock poisoned".into()))?;
        let f = self.fields;
        for id in removals {
            writer.delete_term(Term::from_field_text(f.id, id.as_str()));
        }
        for article in upserts.iter().flatten() {
            writer.delete_term(Term::from_field_text(f.id, article.id.as_str()));
            let mut doc = TantivyDocument::default();
            doc.add_text(f.id, article.id.as_str());
            doc.add_text(f.language, &article.language);
            let tags = article.tags.join(" ");
            for (fields, text) in [
                (f.title, article.title.as_str()),
                (f.body, article.body.as_str()),
                (f.tags, tags.as_str()),
            ] {
                doc.add_text(fields.zh, text);
                doc.add_text(fields.en, text);
            }
            writer.add_document(doc)?;
        }
        writer.commit()?;
        self.reader.reload()?;
        let mut articles = self
            .articles
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for id in removals {
            articles.remove(id);
        }
        for article in upserts.into_iter().flatten() {
            articles.insert(article.id.clone(), article);
        }
        Ok(())
    }

    /// The best `limit` articles for `query`, optionally only in `language`.
    /// A query with no searchable word (only punctuation) finds nothing.
    pub fn search(
        &self,
        query: &str,
        limit: usize,
        language: Option<&str>,
    ) -> Result<Vec<SearchHit>, KbError> {
        let zh_tokens = analyze(chinese_analyzer(), query);
        let en_tokens = analyze(english_analyzer(), query);
        let Some(text_query) = self.text_query(&zh_tokens, &en_tokens) else {
            return Ok(Vec::new());
        };
        let query: Box<dyn Query> = match language {
            None => text_query,
            Some(language) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, text_query),
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(self.fields.language, language),
                        IndexRecordOption::Basic,
                    )),
                ),
            ])),
        };
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        let articles = self.articles();
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            let Some(id) = doc
                .get_first(self.fields.id)
                .and_then(|value| value.as_str())
            else {
                continue;
            };
            let Some(article) = articles.get(id) else {
                continue;
            };
            hits.push(SearchHit {
                id: article.id.clone(),
                title: article.title.clone(),
                language: article.language.clone(),
                tags: article.tags.clone(),
                score,
                snippet: self.snippet(article, &zh_tokens, &en_tokens),
            });
        }
        Ok(hits)
    }

    fn text_query(
        &self,
        zh_tokens: &BTreeSet<String>,
        en_tokens: &BTreeSet<String>,
    ) -> Option<Box<dyn Query>> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut should = |query: Box<dyn Query>, boost: f32| {
            clauses.push((Occur::Should, Box::new(BoostQuery::new(query, boost))));
        };
        for (fields, boost) in self.fields.weighted() {
            for token in zh_tokens {
                let term = Term::from_field_text(fields.zh, token);
                should(
                    Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)),
                    boost,
                );
            }
            for token in en_tokens {
                let term = Term::from_field_text(fields.en, token);
                should(
                    Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
                    boost,
                );
                if let Some(distance) = typo_distance(token) {
                    should(
                        Box::new(FuzzyTermQuery::new(term, distance, true)),
                        boost * 0.5,
                    );
                }
            }
        }
        (!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
    }

    /// The body around the matches, in the analyzer of the article's language.
    fn snippet(
        &self,
        article: &Article,
        zh_tokens: &BTreeSet<String>,
        en_tokens: &BTreeSet<String>,
    ) -> String {
        let (tokens, analyzer, field) = match article.language.starts_with("zh") {
            true => (zh_tokens, chinese_analyzer(), self.fields.body.zh),
            false => (en_tokens, english_analyzer(), self.fields.body.en),
        };
        let terms = tokens.iter().map(|token| (token.clone(), 1.0)).collect();
        let generator = SnippetGenerator::new(terms, analyzer, field, SNIPPET_CHARS);
        let snippet = generator.snippet(&article.body);
        if snippet.highlighted().is_empty() {
            let start: String = article.body.chars().take(SNIPPET_CHARS).collect();
            return html_escape(&start);
        }
        snippet.to_html()
    }
}

/// Distinct tokens of `text`.
fn analyze(mut analyzer: TextAnalyzer, text: &str) -> BTreeSet<String> {
    let mut tokens = BTreeSet::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        let token = stream.token().text.trim();
        if !token.is_empty() {
            tokens.insert(token.to_owned());
        }
    }
    tokens
}

/// How many edits an English word may be away: none for short words (too
/// many false matches), one from 4 letters, two from 8.
fn typo_distance(token: &str) -> Option<u8> {
    if !token.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    match token.len() {
        0..=3 => None,
        4..=7 => Some(1),
        _ => Some(2),
    }
}

fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}
