//! The committed CRD must equal what the types generate; regenerate it with `make crds`.

use deepseek_crds::crd::{crd, crd_yaml, CRD_FILE};

fn committed() -> String {
    let path = format!("{}/{CRD_FILE}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}; run `make crds`"))
}

#[test]
fn committed_crd_matches_the_types() {
    let generated = crd_yaml().expect("CRD serializes");
    assert!(
        committed() == generated,
        "crds/{CRD_FILE} is out of date with crds/src: run `make crds` and commit the result"
    );
}

#[test]
fn crd_has_short_name_status_subresource_and_printer_columns() {
    let crd = crd();
    assert_eq!(crd.spec.group, "inference.deepseek-k8s.dev");
    assert_eq!(crd.spec.names.short_names, Some(vec!["dsd".to_string()]));
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version
        .subresources
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .is_some());
    let columns: Vec<(String, i32)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.to_uppercase(), c.priority.unwrap_or(0)))
        .collect();
    let default_columns: Vec<&str> = columns
        .iter()
        .filter(|(_, p)| *p == 0)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        default_columns,
        ["MODEL", "READY", "PHASE", "STABLE", "CANARY", "WEIGHT", "STEP", "AGE"]
    );
    assert!(
        columns.iter().any(|(_, p)| *p == 1),
        "detail columns at priority 1"
    );
}

#[test]
fn schema_carries_cel_rules_and_bounds() {
    let yaml = committed();
    for needle in [
        "x-kubernetes-validations",
        "exactly one of url, huggingFace, s3, pvc must be set",
        "rollout.steps weights must be strictly ascending",
        "^[0-9a-f]{64}$",
        "x-kubernetes-list-map-keys",
        "default: nvidia.com/gpu",
    ] {
        assert!(yaml.contains(needle), "CRD schema lacks {needle:?}");
    }
}
