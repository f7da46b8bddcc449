//! The redactor against a corpus of Chinese and English sentences (fixtures/pii_corpus.txt,
//! written by scripts/pii-corpus.py): every marked span must be found with its category, and
//! the look-alikes (wrong check digits, dates, versions, order numbers, MAC addresses) left
//! alone. Precision and recall are printed and must reach 0.99 and 0.95; a property test
//! holds redaction to being idempotent.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;

use deepseek_privacy::{find, Category, Redactor};
use proptest::prelude::*;

/// A corpus line: the plain text and its marked spans (category, byte range).
fn parse(line: &str) -> (String, Vec<(Category, std::ops::Range<usize>)>) {
    let mut text = String::new();
    let mut spans = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find("[[") {
        text.push_str(&rest[..open]);
        let close = rest[open..].find("]]").unwrap() + open;
        let (cat, value) = rest[open + 2..close].split_once(':').unwrap();
        let start = text.len();
        text.push_str(value);
        spans.push((cat.parse().unwrap(), start..text.len()));
        rest = &rest[close + 2..];
    }
    text.push_str(rest);
    (text, spans)
}

#[derive(Default)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

#[test]
fn precision_and_recall_on_the_corpus_reach_99_and_95_percent() {
    let corpus = include_str!("fixtures/pii_corpus.txt");
    let mut per: BTreeMap<Category, Counts> = BTreeMap::new();
    let mut misses = Vec::new();
    let (mut positives, mut negatives) = (0, 0);
    for line in corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (text, gold) = parse(line);
        if gold.is_empty() {
            negatives += 1;
        } else {
            positives += 1;
        }
        let found: Vec<_> = find(&text, &Category::ALL)
            .into_iter()
            .map(|f| (f.category, f.range))
            .collect();
        for g in &gold {
            if found.contains(g) {
                per.entry(g.0).or_default().tp += 1;
            } else {
                per.entry(g.0).or_default().fn_ += 1;
                misses.push(format!(
                    "missed {:?} {:?} in {text:?}",
                    g.0,
                    &text[g.1.clone()]
                ));
            }
        }
        for f in found.iter().filter(|f| !gold.contains(f)) {
            per.entry(f.0).or_default().fp += 1;
            misses.push(format!(
                "false {:?} {:?} in {text:?}",
                f.0,
                &text[f.1.clone()]
            ));
        }
    }
    let total = per.values().fold(Counts::default(), |a, c| Counts {
        tp: a.tp + c.tp,
        fp: a.fp + c.fp,
        fn_: a.fn_ + c.fn_,
    });
    let ratio = |n: usize, d: usize| if d == 0 { 1.0 } else { n as f64 / d as f64 };
    println!("PII corpus: {positives} lines with personal data, {negatives} without");
    for (cat, c) in &per {
        println!(
            "  {cat:<6} tp {:>3} fp {:>2} fn {:>2}  precision {:.4} recall {:.4}",
            c.tp,
            c.fp,
            c.fn_,
            ratio(c.tp, c.tp + c.fp),
            ratio(c.tp, c.tp + c.fn_)
        );
    }
    let precision = ratio(total.tp, total.tp + total.fp);
    let recall = ratio(total.tp, total.tp + total.fn_);
    println!("  all    precision {precision:.4} recall {recall:.4}");
    for m in &misses {
        println!("  {m}");
    }
    assert!(
        positives >= 150 && negatives >= 60,
        "the corpus is too small"
    );
    assert!(precision >= 0.99, "precision {precision:.4} < 0.99");
    assert!(recall >= 0.95, "recall {recall:.4} < 0.95");
}

#[test]
fn redaction_replaces_every_finding_with_its_placeholder() {
    let r = Redactor::default();
    for line in include_str!("fixtures/pii_corpus.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
    {
        let (text, _) = parse(line);
        let out = r.redact(&text);
        for f in find(&text, &Category::ALL) {
            let value = &text[f.range];
            assert!(!out.contains(value), "{out:?} still holds {value:?}");
            assert!(
                out.contains(f.category.placeholder()),
                "{out:?} lacks {}",
                f.category.placeholder()
            );
        }
    }
}

/// Text built from pieces that look like personal data, near misses and filler, so the
/// property runs through the interesting cases rather than random bytes only.
fn piiish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z]{1,8}@[a-z]{1,6}\\.(com|cn|org)",
        "1[3-9][0-9]{9}",
        "\\+[1-9][0-9]{0,2} [0-9]{2,4} [0-9]{3,4} [0-9]{3,4}",
        "[0-9]{4}[ -][0-9]{4}[ -][0-9]{4}[ -][0-9]{4}",
        "[0-9]{13,19}",
        "[1-9][0-9]{5}(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|1[0-9])[0-9]{3}[0-9X]",
        "([0-9]{1,3}\\.){3}[0-9]{1,3}",
        "[0-9a-f]{1,4}(:[0-9a-f]{0,4}){2,7}",
        "[ .,:;@+\\-()\\[\\]]",
        "[0-9]{1,6}",
        "(电话|邮箱|身份证|卡号|地址)",
        "\\PC{0,6}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn redacting_twice_is_redacting_once(text in piiish()) {
        let r = Redactor::default();
        let once = r.redact(&text).into_owned();
        let twice = r.redact(&once).into_owned();
        prop_assert_eq!(&twice, &once);
    }

    #[test]
    fn each_category_alone_is_idempotent_too(text in piiish(), k in 0usize..5) {
        let r = Redactor::new([Category::ALL[k]]);
        let once = r.redact(&text).into_owned();
        prop_assert_eq!(r.redact(&once).into_owned(), once);
    }
}
