//! Names that must survive server-side apply and Service naming: `runtime.env` entries (a
//! list keyed by name) and the resource name (a Service name, DNS-1035).

use k8s_openapi::api::core::v1::EnvVar;

use super::tests::{resource, spec};
use super::*;

fn env(names: &[&str]) -> DeepSeekDeploymentSpec {
    let mut s = spec();
    s.runtime.env = names
        .iter()
        .map(|n| EnvVar {
            name: n.to_string(),
            value: Some("1".into()),
            ..EnvVar::default()
        })
        .collect();
    s
}

#[test]
fn an_env_entry_repeating_a_name_the_operator_sets_is_rejected_with_its_path() {
    assert_eq!(
        validate(&env(&["RUST_LOG", ADMIN_PORT_ENV])),
        Err(vec![SpecError::ReservedEnvName {
            field: "spec.runtime.env[1].name".into(),
            name: ADMIN_PORT_ENV.into(),
        }])
    );
}

#[test]
fn an_env_name_given_twice_is_rejected_at_the_second() {
    assert_eq!(
        validate(&env(&["A", "B", "A"])),
        Err(vec![SpecError::DuplicateEnvName {
            field: "spec.runtime.env[2].name".into(),
            name: "A".into(),
        }])
    );
    assert_eq!(validate(&env(&["A", "B"])), Ok(()));
}

#[test]
fn a_name_starting_with_a_digit_is_a_dns_label_but_not_a_service_name() {
    assert!(is_dns_label("1chat"));
    assert!(!is_dns1035_label("1chat"));
    assert_eq!(
        validate_resource(&resource("1chat", spec(), None)),
        Err(vec![SpecError::InvalidName {
            field: "metadata.name".into(),
            name: "1chat".into(),
        }])
    );
    assert_eq!(validate_resource(&resource("chat1", spec(), None)), Ok(()));
}
