//! URLs as they may appear in logs and errors: without the password of `user:pass@` and with
//! every query value replaced, since a presigned S3 URL (`X-Amz-Signature`, `X-Amz-Credential`)
//! or a token in a query string is a credential. The key names stay: they say what kind of URL
//! it was without saying what unlocks it.

const HIDDEN: &str = "REDACTED";

/// `url` with its credentials and query values hidden. Not a URL parser's round trip: text that
/// is no URL comes back unchanged.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The authority ends at the first '/', '?' or '#'; userinfo is what precedes its last '@'.
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}:{HIDDEN}@{host}")
        }
        None => authority.to_string(),
    };
    let (path, fragment) = match tail.split_once('#') {
        Some((p, _)) => (p, "#"),
        None => (tail, ""),
    };
    let path = match path.split_once('?') {
        Some((p, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) => format!("{k}={HIDDEN}"),
                    None => kv.to_string(),
                })
                .collect();
            format!("{p}?{}", pairs.join("&"))
        }
        None => path.to_string(),
    };
    format!("{scheme}://{authority}{path}{fragment}")
}

/// Free text (an error from the HTTP client, which quotes the URL it failed on) with every
/// `http://` or `https://` URL in it redacted.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = find_url(rest) {
        out.push_str(&rest[..start]);
        let len = rest[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '<' | '>'))
            .unwrap_or(rest.len() - start);
        out.push_str(&url(&rest[start..start + len]));
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

fn find_url(s: &str) -> Option<usize> {
    match (s.find("http://"), s.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_passwords_and_query_values_and_keeps_the_rest() {
        assert_eq!(
            url("https://alice:s3cret@host:8443/m/a.gguf?X-Amz-Signature=abc&X-Amz-Credential=AK%2F1&flag"),
            "https://alice:REDACTED@host:8443/m/a.gguf?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&flag"
        );
        assert_eq!(url("http://h/m.gguf"), "http://h/m.gguf");
        assert_eq!(
            url("http://tok@h?x=1#frag"),
            "http://tok:REDACTED@h?x=REDACTED#"
        );
        assert_eq!(url("/local/dir"), "/local/dir");
    }

    #[test]
    fn redacts_every_url_quoted_in_free_text() {
        let e = "error sending request for url (https://u:p@h/a?sig=zz): timed out; \
                 then http://h2/b?t=1 failed";
        let r = text(e);
        assert!(
            !r.contains("zz") && !r.contains(":p@") && !r.contains("t=1"),
            "{r}"
        );
        assert_eq!(
            r,
            "error sending request for url (https://u:REDACTED@h/a?sig=REDACTED): timed out; \
             then http://h2/b?t=REDACTED failed"
        );
    }
}
