//! Finding personal data in text. Each category has a pattern for candidates and, where a
//! number carries one, a check that rejects look-alikes: resident ID numbers must have a real
//! birth date and the ISO 7064 check character, card numbers must pass Luhn, IP addresses must
//! parse. Candidates glued to more digits (or, for IPs, to letters) are parts of something
//! else (an order number, a version string) and are left alone. Overlapping candidates resolve
//! to the leftmost, then the longest, then the most specific category.

use std::net::Ipv6Addr;
use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use super::category::Category;

/// One piece of personal data: its category and byte range in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub category: Category,
    pub range: Range<usize>,
}

struct Patterns {
    email: Regex,
    cn_id: Regex,
    card: Regex,
    phone: Vec<Regex>,
    ipv4: Regex,
    ipv6: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        // Written by hand and covered by tests: they compile.
        #[allow(clippy::unwrap_used)]
        let re = |p: &str| Regex::new(p).unwrap();
        Patterns {
            email: re(r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}"),
            cn_id: re(r"[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]"),
            // Contiguous, in groups of four split by one space or dash (the last may be short),
            // or American Express's 4-6-5.
            card: re(r"[0-9]{13,19}|[0-9]{4}(?:[ \-][0-9]{4}){2,3}(?:[ \-][0-9]{1,3})?|3[47][0-9]{2}[ \-][0-9]{6}[ \-][0-9]{5}"),
            phone: vec![
                // Mainland-China mobile: optional +86/0086, then 1[3-9] and 9 digits (3-4-4 groups allowed).
                re(r"(?:(?:\+|00)86[ \-]?)?1[3-9][0-9](?:[ \-]?[0-9]{4}){2}"),
                // International: + country code, then groups of digits (an area code in parentheses allowed).
                re(r"\+[1-9][0-9]{0,2}(?:[ \-.]?\([0-9]{1,4}\))?(?:[ \-.]?[0-9]{1,5}){2,5}"),
                // North American national formats: (415) 555-2671, 415-555-2671.
                re(r"\([2-9][0-9]{2}\) ?[2-9][0-9]{2}[\-. ][0-9]{4}|[2-9][0-9]{2}-[2-9][0-9]{2}-[0-9]{4}"),
            ],
            ipv4: re(r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}"),
            ipv6: re(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*"),
        }
    })
}

/// Every finding of the wanted `categories` in `text`, non-overlapping, in text order.
pub fn find(text: &str, categories: &[Category]) -> Vec<Finding> {
    let p = patterns();
    let mut all = Vec::new();
    for &c in categories {
        match c {
            Category::Email => push_matches(&mut all, c, &p.email, text, |_, _| true),
            Category::CnId => push_matches(&mut all, c, &p.cn_id, text, |t, r| {
                word_bounded(t, &r) && cn_id_valid(&t[r])
            }),
            Category::Card => push_matches(&mut all, c, &p.card, text, |t, r| {
                word_bounded(t, &r) && luhn_valid(&t[r])
            }),
            Category::Phone => {
                for re in &p.phone {
                    push_matches(&mut all, c, re, text, |t, r| {
                        digit_bounded(t, &r) && phone_digits_ok(&t[r])
                    });
                }
            }
            Category::Ip => {
                push_matches(&mut all, c, &p.ipv4, text, ipv4_bounded);
                push_ipv6(&mut all, &p.ipv6, text);
            }
        }
    }
    resolve(all)
}

fn push_matches(
    out: &mut Vec<Finding>,
    category: Category,
    re: &Regex,
    text: &str,
    accept: impl Fn(&str, Range<usize>) -> bool,
) {
    out.extend(
        re.find_iter(text)
            .map(|m| m.range())
            .filter(|r| accept(text, r.clone()))
            .map(|range| Finding { category, range }),
    );
}

/// Leftmost first, then longest, then the most specific category; drops what overlaps a kept one.
fn resolve(mut all: Vec<Finding>) -> Vec<Finding> {
    all.sort_by_key(|f| (f.range.start, usize::MAX - f.range.len(), f.category));
    let mut kept: Vec<Finding> = Vec::with_capacity(all.len());
    for f in all {
        if kept.last().is_none_or(|k| f.range.start >= k.range.end) {
            kept.push(f);
        }
    }
    kept
}

fn prev_char(text: &str, at: usize) -> Option<char> {
    text[..at].chars().next_back()
}

fn next_is(text: &str, at: usize, pred: impl Fn(char) -> bool) -> bool {
    text[at..].chars().next().is_some_and(pred)
}

/// Not glued to more digits on either side (then it is part of a longer number).
fn digit_bounded(text: &str, r: &Range<usize>) -> bool {
    !prev_char(text, r.start).is_some_and(|c| c.is_ascii_digit())
        && !next_is(text, r.end, |c| c.is_ascii_digit())
}

/// Not glued to ASCII letters or digits: `SF1234567890123` is a tracking number.
fn word_bounded(text: &str, r: &Range<usize>) -> bool {
    !prev_char(text, r.start).is_some_and(|c| c.is_ascii_alphanumeric())
        && !next_is(text, r.end, |c| c.is_ascii_alphanumeric())
}

/// GB 11643: 17 digits weighted 2^(17-i) mod 11, check character from "10X98765432"; the
/// birth date (digits 7-14) must exist.
fn cn_id_valid(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = id.as_bytes();
    if b.len() != 18 {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let num = |r: Range<usize>| id[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    CHECK[(sum % 11) as usize] == b[17].to_ascii_uppercase() && day <= days_in_month(year, month)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Luhn's check over the digits (separators skipped); 13 to 19 digits, not all the same.
fn luhn_valid(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || digits.iter().all(|&d| d == digits[0]) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| match (i % 2, d * 2) {
            (1, x) if x > 9 => x - 9,
            (1, x) => x,
            _ => d,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// E.164 numbers have at most 15 digits; fewer than 7 is no phone number.
fn phone_digits_ok(s: &str) -> bool {
    let n = s.chars().filter(char::is_ascii_digit).count();
    (7..=15).contains(&n)
}

/// An IPv4 address stands alone: not inside a longer dotted number (`1.2.3.4.5`), not after a
/// letter (`v1.2.3.4` is a version).
fn ipv4_bounded(text: &str, r: Range<usize>) -> bool {
    let before = prev_char(text, r.start);
    let glued_before = before.is_some_and(|c| c.is_ascii_alphanumeric())
        || (before == Some('.')
            && prev_char(text, r.start - 1).is_some_and(|c| c.is_ascii_digit()));
    let rest = &text[r.end..];
    let glued_after = rest.starts_with(|c: char| c.is_ascii_alphanumeric())
        || (rest.starts_with('.') && rest[1..].starts_with(|c: char| c.is_ascii_digit()));
    !glued_before && !glued_after
}

/// IPv6 candidates are runs of hex digits, colons and dots with a colon in them; those that
/// parse (after dropping a sentence's final dot or colon), with at least two colons and not
/// glued to letters, are addresses. `std::io` or `12:30:45` do not parse or are glued.
fn push_ipv6(out: &mut Vec<Finding>, re: &Regex, text: &str) {
    for m in re.find_iter(text) {
        let mut r = m.range();
        while r.end > r.start && (text[..r.end].ends_with('.') || text[..r.end].ends_with(':')) {
            // `::` may end an address (`fe80::`); keep it when it parses so.
            if text[r.clone()].parse::<Ipv6Addr>().is_ok() {
                break;
            }
            r.end -= 1;
        }
        let s = &text[r.clone()];
        let glued = prev_char(text, r.start).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            || next_is(text, r.end, |c| c.is_ascii_alphanumeric() || c == '_');
        if !glued && s.matches(':').count() >= 2 && s.parse::<Ipv6Addr>().is_ok() {
            out.push(Finding {
                category: Category::Ip,
                range: r,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(Category, &str)> {
        find(text, &Category::ALL)
            .into_iter()
            .map(|f| (f.category, &text[f.range]))
            .collect()
    }

    #[test]
    fn a_resident_id_needs_its_check_character_and_a_real_birth_date() {
        assert!(cn_id_valid("11010519491231002X"));
        assert!(!cn_id_valid("110105194912310021"), "wrong check character");
        assert!(!cn_id_valid("110105194902300027"), "February 30th");
        assert_eq!(
            found("身份证11010519491231002X。"),
            vec![(Category::CnId, "11010519491231002X")]
        );
    }

    #[test]
    fn card_numbers_pass_luhn_grouped_or_not() {
        assert!(luhn_valid("4111111111111111"));
        assert!(!luhn_valid("4111111111111112"));
        assert_eq!(
            found("card 4111 1111 1111 1111."),
            vec![(Category::Card, "4111 1111 1111 1111")]
        );
        assert!(found("order 4111111111111112").is_empty());
    }

    #[test]
    fn ips_stand_alone_and_parse() {
        assert_eq!(
            found("from 10.0.0.1:8080"),
            vec![(Category::Ip, "10.0.0.1")]
        );
        assert!(found("v1.2.3.4 and 1.2.3.4.5 and 256.1.1.1").is_empty());
        assert_eq!(
            found("addr 2001:db8::1."),
            vec![(Category::Ip, "2001:db8::1")]
        );
        assert!(found("use std::io; at 12:30:45").is_empty());
    }
}
