//! Label selectors (`a=b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`) and field
//! selectors on metadata.name / metadata.namespace, as list and watch filters.

use serde_json::Value;

use crate::error::ApiError;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector {
    labels: Vec<Req>,
    fields: Vec<Req>,
}

#[derive(Clone, Debug, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Selector {
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        let labels = split_terms(labels.unwrap_or(""))
            .into_iter()
            .map(|t| parse_term(&t))
            .collect::<Result<_, _>>()?;
        let fields = split_terms(fields.unwrap_or(""))
            .into_iter()
            .map(|t| parse_term(&t))
            .collect::<Result<Vec<_>, _>>()?;
        for f in &fields {
            let key = match f {
                Req::Eq(k, _) | Req::NotEq(k, _) => k,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "unsupported field selector {f:?}"
                    )))
                }
            };
            if key != "metadata.name" && key != "metadata.namespace" {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {key}"
                )));
            }
        }
        Ok(Self { labels, fields })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let label = |k: &str| {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let field = |k: &str| {
            let key = k.strip_prefix("metadata.").unwrap_or(k);
            obj.get("metadata")
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        self.labels.iter().all(|r| eval(r, &label)) && self.fields.iter().all(|r| eval(r, &field))
    }
}

fn eval(r: &Req, get: &dyn Fn(&str) -> Option<String>) -> bool {
    match r {
        Req::Eq(k, v) => get(k).as_deref() == Some(v.as_str()),
        Req::NotEq(k, v) => get(k).as_deref() != Some(v.as_str()),
        Req::Exists(k) => get(k).is_some(),
        Req::NotExists(k) => get(k).is_none(),
        Req::In(k, vs) => get(k).is_some_and(|v| vs.contains(&v)),
        Req::NotIn(k, vs) => get(k).is_none_or(|v| !vs.contains(&v)),
    }
}

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_term(t: &str) -> Result<Req, ApiError> {
    let bad = || ApiError::BadRequest(format!("unable to parse requirement: {t:?}"));
    if let Some((k, v)) = t.split_once("!=") {
        return Ok(Req::NotEq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
        return Ok(Req::Eq(k.trim().into(), v.trim().into()));
    }
    for (op, notin) in [(" notin ", true), (" in ", false)] {
        if let Some((k, rest)) = t.split_once(op) {
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'));
            let vals = inner
                .ok_or_else(bad)?
                .split(',')
                .map(|v| v.trim().to_string())
                .collect();
            let k = k.trim().to_string();
            return Ok(if notin {
                Req::NotIn(k, vals)
            } else {
                Req::In(k, vals)
            });
        }
    }
    match t.strip_prefix('!') {
        Some(k) => Ok(Req::NotExists(k.trim().into())),
        None if !t.contains(' ') => Ok(Req::Exists(t.into())),
        None => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_and_equality_requirements_combine() {
        let obj = json!({"metadata": {"name": "a", "labels": {"app": "x", "tier": "gpu"}}});
        let sel = |l: &str| Selector::parse(Some(l), None).map(|s| s.matches(&obj));
        assert_eq!(sel("app=x,tier in (gpu, cpu)"), Ok(true));
        assert_eq!(sel("app=x,!tier"), Ok(false));
        assert_eq!(sel("app notin (y),missing!=z"), Ok(true));
        let by_name = Selector::parse(None, Some("metadata.name=a")).map(|s| s.matches(&obj));
        assert_eq!(by_name, Ok(true));
    }

    #[test]
    fn unknown_field_selector_is_rejected() {
        assert!(matches!(
            Selector::parse(None, Some("spec.x=1")),
            Err(ApiError::BadRequest(_))
        ));
    }
}
