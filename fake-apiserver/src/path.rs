//! Request paths: `/api/v1/...` and `/apis/{group}/{version}/...`, namespaced or not, with an
//! optional object name and subresource.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses a resource path; `None` for discovery and anything else that is not one.
pub fn parse(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, more @ ..] if !matches!(*plural, "status" | "finalize") => {
            (Some(ns.to_string()), {
                let mut v = vec![*plural];
                v.extend_from_slice(more);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    Some(Target {
        group: group.to_string(),
        version: version.to_string(),
        plural: plural.to_string(),
        namespace,
        name,
        subresource: sub,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_group_path_with_status_subresource_parses() {
        let t = parse("/apis/apps/v1/namespaces/ns1/deployments/web/status");
        assert_eq!(
            t,
            Some(Target {
                group: "apps".into(),
                version: "v1".into(),
                plural: "deployments".into(),
                namespace: Some("ns1".into()),
                name: Some("web".into()),
                subresource: Some("status".into()),
            })
        );
    }

    #[test]
    fn a_namespace_object_is_cluster_scoped() {
        let t = parse("/api/v1/namespaces/default").map(|t| (t.plural, t.namespace, t.name));
        assert_eq!(t, Some(("namespaces".into(), None, Some("default".into()))));
    }
}
