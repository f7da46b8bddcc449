//! One test per semantic rule: the exact variant and field path it reports.

use kube::core::ObjectMeta;
use serde_json::json;

use super::*;
use crate::spec::{DeepSeekDeployment, ModelFile};
use crate::status::{DeepSeekDeploymentStatus, HistoryEntry, RevisionRef};

const SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

pub(super) fn spec() -> DeepSeekDeploymentSpec {
    serde_json::from_value(json!({
        "model": {
            "name": "smollm2",
            "source": {"url": {"url": "http://models.local/smollm2"}},
            "files": [{"path": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": SHA}],
            "format": "gguf"
        }
    }))
    .expect("fixture spec parses")
}

fn safetensors_spec() -> DeepSeekDeploymentSpec {
    let mut spec = spec();
    spec.model.format = ModelFormat::Safetensors;
    spec.model.files = ["model.safetensors", "config.json", "tokenizer.json"]
        .iter()
        .map(|p| ModelFile {
            path: p.to_string(),
            sha256: SHA.into(),
        })
        .collect();
    spec
}

fn errors(spec: &DeepSeekDeploymentSpec) -> Vec<SpecError> {
    validate(spec).err().unwrap_or_default()
}

pub(super) fn resource(
    name: &str,
    spec: DeepSeekDeploymentSpec,
    status: Option<DeepSeekDeploymentStatus>,
) -> DeepSeekDeployment {
    DeepSeekDeployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec,
        status,
    }
}

#[test]
fn accepts_the_minimal_gguf_spec_with_defaults() {
    let spec = spec();
    assert_eq!(validate(&spec), Ok(()));
    assert_eq!(spec.replicas, 1);
    assert_eq!(spec.runtime.gpus, 1);
    assert_eq!(spec.runtime.gpu_resource_name, "nvidia.com/gpu");
    assert_eq!(spec.rollout.revision_history_limit, 3);
}

#[test]
fn accepts_a_complete_safetensors_model() {
    assert_eq!(validate(&safetensors_spec()), Ok(()));
}

#[test]
fn rejects_a_gpu_resource_name_without_domain() {
    let mut spec = spec();
    spec.runtime.gpu_resource_name = "gpu".into();
    assert_eq!(
        errors(&spec),
        vec![SpecError::InvalidGpuResourceName {
            field: "spec.runtime.gpuResourceName".into(),
            value: "gpu".into()
        }]
    );
}

#[test]
fn rejects_gpu_resource_names_in_the_kubernetes_domain() {
    for value in [
        "kubernetes.io/gpu",
        "example.kubernetes.io/gpu",
        "requests.nvidia.com/gpu",
        "nvidia.com/",
        "Nvidia.com/gpu",
    ] {
        assert!(!is_extended_resource_name(value), "{value} accepted");
    }
    for value in [
        "nvidia.com/gpu",
        "amd.com/gpu",
        "gpu.intel.com/i915",
        "nvidia.com/mig-1g.10gb",
    ] {
        assert!(is_extended_resource_name(value), "{value} rejected");
    }
}

#[test]
fn rejects_duplicate_file_paths() {
    let mut spec = spec();
    spec.model.files.push(spec.model.files[0].clone());
    assert_eq!(
        errors(&spec),
        vec![SpecError::DuplicateFilePath {
            field: "spec.model.files[1].path".into(),
            path: "SmolLM2-135M-Instruct.Q4_1.gguf".into()
        }]
    );
}

#[test]
fn rejects_paths_that_escape_the_model_directory() {
    let mut spec = spec();
    spec.model.files.push(ModelFile {
        path: "../etc/passwd".into(),
        sha256: SHA.into(),
    });
    assert_eq!(
        errors(&spec),
        vec![SpecError::UnsafeFilePath {
            field: "spec.model.files[1].path".into(),
            path: "../etc/passwd".into()
        }]
    );
}

#[test]
fn rejects_an_uppercase_sha256() {
    let mut spec = spec();
    spec.model.files[0].sha256 = SHA.to_uppercase();
    assert_eq!(
        errors(&spec),
        vec![SpecError::InvalidSha256 {
            field: "spec.model.files[0].sha256".into(),
            value: SHA.to_uppercase()
        }]
    );
}

#[test]
fn rejects_an_empty_file_list() {
    let mut spec = spec();
    spec.model.files.clear();
    assert_eq!(
        errors(&spec),
        vec![SpecError::NoFiles {
            field: "spec.model.files".into()
        }]
    );
}

#[test]
fn rejects_a_gguf_model_without_a_gguf_file() {
    let mut spec = spec();
    spec.model.files[0].path = "model.bin".into();
    assert_eq!(
        errors(&spec),
        vec![SpecError::MissingModelFile {
            field: "spec.model.files".into(),
            format: "gguf".into(),
            expected: "a .gguf file".into()
        }]
    );
}

#[test]
fn rejects_a_safetensors_model_without_tokenizer_json() {
    let mut spec = safetensors_spec();
    spec.model.files.retain(|f| f.path != "tokenizer.json");
    assert_eq!(
        errors(&spec),
        vec![SpecError::MissingModelFile {
            field: "spec.model.files".into(),
            format: "safetensors".into(),
            expected: "tokenizer.json".into()
        }]
    );
}

#[test]
fn rejects_a_gguf_file_in_a_safetensors_model() {
    let mut spec = safetensors_spec();
    spec.model.files.push(ModelFile {
        path: "extra.gguf".into(),
        sha256: SHA.into(),
    });
    assert_eq!(
        errors(&spec),
        vec![SpecError::FormatFileMismatch {
            field: "spec.model.files[3].path".into(),
            format: "safetensors".into(),
            path: "extra.gguf".into()
        }]
    );
}

#[test]
fn rejects_a_gguf_quantization_on_safetensors() {
    let mut spec = safetensors_spec();
    spec.model.quantization = Some("Q4_K_M".into());
    assert_eq!(
        errors(&spec),
        vec![SpecError::QuantizationMismatch {
            field: "spec.model.quantization".into(),
            format: "safetensors".into(),
            value: "Q4_K_M".into()
        }]
    );
}

#[test]
fn rejects_two_sources_at_once() {
    let mut spec = spec();
    spec.model.source.pvc = Some(crate::spec::PvcSource {
        claim_name: "models".into(),
        path: String::new(),
    });
    assert_eq!(
        errors(&spec),
        vec![SpecError::OneOfViolated {
            field: "spec.model.source".into(),
            members: "url, huggingFace, s3, pvc".into(),
            count: 2
        }]
    );
}

#[test]
fn rejects_weights_out_of_range_and_not_ascending() {
    let mut spec = spec();
    spec.rollout.steps =
        serde_json::from_value(json!([{"weight": 50}, {"weight": 20}, {"weight": 120}]))
            .expect("steps parse");
    assert_eq!(
        errors(&spec),
        vec![
            SpecError::WeightsNotAscending {
                field: "spec.rollout.steps[1].weight".into(),
                previous: 50,
                weight: 20
            },
            SpecError::WeightOutOfRange {
                field: "spec.rollout.steps[2].weight".into(),
                weight: 120
            },
        ]
    );
}

#[test]
fn rejects_a_pause_that_is_not_a_duration() {
    let mut spec = spec();
    spec.rollout.steps =
        serde_json::from_value(json!([{"weight": 10, "pause": "5 minutes"}])).expect("steps parse");
    let errs = errors(&spec);
    assert!(
        matches!(&errs[..], [SpecError::InvalidDuration { field, value, .. }]
            if field == "spec.rollout.steps[0].pause" && value == "5 minutes"),
        "{errs:?}"
    );
}

#[test]
fn rejects_more_zones_than_replicas() {
    let mut spec = spec();
    spec.replicas = 2;
    spec.placement.zones = vec!["a".into(), "b".into(), "c".into()];
    assert_eq!(
        errors(&spec),
        vec![SpecError::TooFewReplicasForZones {
            field: "spec.replicas".into(),
            replicas: 2,
            zones: 3
        }]
    );
}

#[test]
fn rejects_a_pdb_larger_than_the_replicas() {
    let mut spec = spec();
    spec.placement.pdb_min_available = Some(2);
    assert_eq!(
        errors(&spec),
        vec![SpecError::PdbMinAvailableTooLarge {
            field: "spec.placement.pdbMinAvailable".into(),
            min_available: 2,
            replicas: 1
        }]
    );
}

#[test]
fn rejects_extra_args_that_override_operator_flags() {
    let mut spec = spec();
    spec.runtime.extra_args = vec!["--log-json".into(), "--port=9000".into()];
    assert_eq!(
        errors(&spec),
        vec![SpecError::ReservedArgument {
            field: "spec.runtime.extraArgs[1]".into(),
            arg: "--port=9000".into()
        }]
    );
}

#[test]
fn rejects_a_backup_schedule_that_is_not_cron() {
    let mut spec = spec();
    spec.backup = Some(
        serde_json::from_value(
            json!({"schedule": "every night", "destination": {"pvc": {"claimName": "backups"}}}),
        )
        .expect("backup parses"),
    );
    assert_eq!(
        errors(&spec),
        vec![SpecError::InvalidCronSchedule {
            field: "spec.backup.schedule".into(),
            value: "every night".into()
        }]
    );
}

#[test]
fn rejects_a_rollback_target_missing_from_history() {
    let mut spec = spec();
    spec.rollout.rollback_to = Some("0123456789".into());
    let status = DeepSeekDeploymentStatus {
        history: vec![HistoryEntry {
            hash: "abcdefabcd".into(),
            model_digest: String::new(),
            image: String::new(),
            promoted_at: None,
        }],
        ..Default::default()
    };
    assert_eq!(
        validate_resource(&resource("chat", spec, Some(status))),
        Err(vec![SpecError::RollbackTargetNotInHistory {
            field: "spec.rollout.rollbackTo".into(),
            revision: "0123456789".into(),
            known: "abcdefabcd".into()
        }])
    );
}

#[test]
fn accepts_a_rollback_target_from_history_or_the_stable_revision() {
    let mut spec = spec();
    spec.rollout.rollback_to = Some("abcdefabcd".into());
    let in_history = DeepSeekDeploymentStatus {
        history: vec![HistoryEntry {
            hash: "abcdefabcd".into(),
            model_digest: String::new(),
            image: String::new(),
            promoted_at: None,
        }],
        ..Default::default()
    };
    let stable = DeepSeekDeploymentStatus {
        stable_revision: Some(RevisionRef {
            hash: "abcdefabcd".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        validate_resource(&resource("chat", spec.clone(), Some(in_history))),
        Ok(())
    );
    assert_eq!(
        validate_resource(&resource("chat", spec, Some(stable))),
        Ok(())
    );
}

#[test]
fn rejects_a_name_too_long_for_child_names() {
    let name = "a".repeat(53);
    assert_eq!(
        validate_resource(&resource(&name, spec(), None)),
        Err(vec![SpecError::InvalidName {
            field: "metadata.name".into(),
            name
        }])
    );
}

#[test]
fn error_messages_start_with_the_field_path() {
    let err = SpecError::NoFiles {
        field: "spec.model.files".into(),
    };
    assert!(err.to_string().starts_with("spec.model.files: "));
    assert_eq!(err.field(), "spec.model.files");
}
