//! Semantic validation: what the schema and CEL cannot say (GPU resource name form, duplicate or
//! unsafe file paths, files consistent with the format, rollbackTo present in the history, ...),
//! plus the few schema rules `render` must also enforce offline, where no API server checks them.
//! Every error names the field path it is about.

use std::collections::BTreeSet;

use crate::duration::parse_duration;
use crate::spec::{DeepSeekDeployment, DeepSeekDeploymentSpec, ModelFormat, ModelSpec};
pub use crate::spec_error::SpecError;
use crate::status::DeepSeekDeploymentStatus;
use crate::syntax::{file_name, is_cron_schedule, is_safe_relative_path, is_sha256_hex};
pub use crate::syntax::{is_dns1035_label, is_dns_label, is_extended_resource_name};
use crate::MAX_NAME_LEN;

/// Arguments of `serve` the operator sets itself; `extraArgs` may not override them.
pub const RESERVED_SERVE_ARGS: &[&str] = &[
    "--model",
    "--served-model-name",
    "--revision",
    "--host",
    "--port",
    "--admin-port",
    "--api-keys-file",
    "--jwt-secret-file",
    "--jwt-public-key-file",
    "--jwks-file",
    "--jwt-issuer",
    "--jwt-audience",
    "--jwt-roles-claim",
];

/// Environment variables the operator sets on the runtime container itself. The container's
/// `env` is a list keyed by name under server-side apply: a user entry repeating one of these
/// (or itself) is rejected by the API server as "duplicate entries for key".
pub const RESERVED_ENV: &[&str] = &[ADMIN_PORT_ENV, CONVERSATION_STORE_ENV];
/// The variable that moves the runtime's `/metrics` to its admin port (`--admin-port`), which
/// the chat path never exposes.
pub const ADMIN_PORT_ENV: &str = "DSR_ADMIN_PORT";
/// The variable carrying the conversation store's URL when `spec.privacy.conversationStore` is set.
pub const CONVERSATION_STORE_ENV: &str = "DSR_CONVERSATION_STORE";

/// Validates the spec alone (no status, no name).
pub fn validate(spec: &DeepSeekDeploymentSpec) -> Result<(), Vec<SpecError>> {
    let mut errors = Vec::new();
    check_model(&spec.model, &mut errors);
    check_runtime(spec, &mut errors);
    check_placement(spec, &mut errors);
    check_rollout(spec, &mut errors);
    check_backup(spec, &mut errors);
    if spec.auth.as_ref().is_some_and(|a| a.files().is_empty()) {
        errors.push(SpecError::AuthWithoutCredentials {
            field: "spec.auth".into(),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Validates the whole resource: name, spec, and `rollbackTo` against `status.history`.
pub fn validate_resource(dsd: &DeepSeekDeployment) -> Result<(), Vec<SpecError>> {
    let mut errors = match validate(&dsd.spec) {
        Ok(()) => Vec::new(),
        Err(errors) => errors,
    };
    let name = dsd.metadata.name.clone().unwrap_or_default();
    if name.len() > MAX_NAME_LEN || !is_dns1035_label(&name) {
        errors.insert(
            0,
            SpecError::InvalidName {
                field: "metadata.name".into(),
                name,
            },
        );
    }
    check_rollback_target(&dsd.spec, dsd.status.as_ref(), &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check_model(model: &ModelSpec, errors: &mut Vec<SpecError>) {
    let source = &model.source;
    let count = [
        source.url.is_some(),
        source.hugging_face.is_some(),
        source.s3.is_some(),
        source.pvc.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    if count != 1 {
        errors.push(SpecError::OneOfViolated {
            field: "spec.model.source".into(),
            members: "url, huggingFace, s3, pvc".into(),
            count,
        });
    }
    if model.files.is_empty() {
        errors.push(SpecError::NoFiles {
            field: "spec.model.files".into(),
        });
    }
    let mut seen = BTreeSet::new();
    for (i, file) in model.files.iter().enumerate() {
        let field = format!("spec.model.files[{i}]");
        if !is_safe_relative_path(&file.path) {
            errors.push(SpecError::UnsafeFilePath {
                field: format!("{field}.path"),
                path: file.path.clone(),
            });
        }
        if !seen.insert(file.path.as_str()) {
            errors.push(SpecError::DuplicateFilePath {
                field: format!("{field}.path"),
                path: file.path.clone(),
            });
        }
        if !is_sha256_hex(&file.sha256) {
            errors.push(SpecError::InvalidSha256 {
                field: format!("{field}.sha256"),
                value: file.sha256.clone(),
            });
        }
    }
    check_format(model, errors);
}

/// Files consistent with the format: a GGUF model has a `.gguf` file and no safetensors; a
/// safetensors model has shards, `config.json` and `tokenizer.json` (it has no embedded tokenizer).
fn check_format(model: &ModelSpec, errors: &mut Vec<SpecError>) {
    let (format, own_ext, other_ext) = match model.format {
        ModelFormat::Gguf => ("gguf", ".gguf", ".safetensors"),
        ModelFormat::Safetensors => ("safetensors", ".safetensors", ".gguf"),
    };
    for (i, file) in model.files.iter().enumerate() {
        if file.path.ends_with(other_ext) {
            errors.push(SpecError::FormatFileMismatch {
                field: format!("spec.model.files[{i}].path"),
                format: format.into(),
                path: file.path.clone(),
            });
        }
    }
    if let (ModelFormat::Safetensors, Some(q)) = (model.format, &model.quantization) {
        if !matches!(q.as_str(), "bf16" | "f16" | "f32") {
            errors.push(SpecError::QuantizationMismatch {
                field: "spec.model.quantization".into(),
                format: format.into(),
                value: q.clone(),
            });
        }
    }
    if model.files.is_empty() {
        return; // reported as NoFiles
    }
    let mut missing = Vec::new();
    if !model.files.iter().any(|f| f.path.ends_with(own_ext)) {
        missing.push(format!("a {own_ext} file"));
    }
    if model.format == ModelFormat::Safetensors {
        for name in ["config.json", "tokenizer.json"] {
            if !model.files.iter().any(|f| file_name(&f.path) == name) {
                missing.push(name.to_string());
            }
        }
    }
    for expected in missing {
        errors.push(SpecError::MissingModelFile {
            field: "spec.model.files".into(),
            format: format.into(),
            expected,
        });
    }
}

fn check_runtime(spec: &DeepSeekDeploymentSpec, errors: &mut Vec<SpecError>) {
    let name = &spec.runtime.gpu_resource_name;
    if !is_extended_resource_name(name) {
        errors.push(SpecError::InvalidGpuResourceName {
            field: "spec.runtime.gpuResourceName".into(),
            value: name.clone(),
        });
    }
    for (i, arg) in spec.runtime.extra_args.iter().enumerate() {
        let reserved = RESERVED_SERVE_ARGS
            .iter()
            .find(|flag| arg == *flag || arg.starts_with(&format!("{flag}=")));
        if reserved.is_some() {
            errors.push(SpecError::ReservedArgument {
                field: format!("spec.runtime.extraArgs[{i}]"),
                arg: arg.clone(),
            });
        }
    }
    let mut seen = BTreeSet::new();
    for (i, var) in spec.runtime.env.iter().enumerate() {
        let field = format!("spec.runtime.env[{i}].name");
        let name = var.name.clone();
        if RESERVED_ENV.contains(&name.as_str()) {
            errors.push(SpecError::ReservedEnvName { field, name });
        } else if !seen.insert(name.clone()) {
            errors.push(SpecError::DuplicateEnvName { field, name });
        }
    }
}

fn check_placement(spec: &DeepSeekDeploymentSpec, errors: &mut Vec<SpecError>) {
    let zones = spec.placement.zones.iter().collect::<BTreeSet<_>>().len();
    if zones > 0 && (spec.replicas as usize) < zones {
        errors.push(SpecError::TooFewReplicasForZones {
            field: "spec.replicas".into(),
            replicas: spec.replicas,
            zones,
        });
    }
    if let Some(min_available) = spec.placement.pdb_min_available {
        if min_available > spec.replicas {
            errors.push(SpecError::PdbMinAvailableTooLarge {
                field: "spec.placement.pdbMinAvailable".into(),
                min_available,
                replicas: spec.replicas,
            });
        }
    }
}

fn check_rollout(spec: &DeepSeekDeploymentSpec, errors: &mut Vec<SpecError>) {
    let mut previous: Option<i32> = None;
    for (i, step) in spec.rollout.steps.iter().enumerate() {
        let field = format!("spec.rollout.steps[{i}]");
        if !(0..=100).contains(&step.weight) {
            errors.push(SpecError::WeightOutOfRange {
                field: format!("{field}.weight"),
                weight: step.weight,
            });
        }
        if let Some(previous) = previous.filter(|p| step.weight <= *p) {
            errors.push(SpecError::WeightsNotAscending {
                field: format!("{field}.weight"),
                previous,
                weight: step.weight,
            });
        }
        previous = Some(step.weight);
        if let Some(pause) = &step.pause {
            if let Err(e) = parse_duration(pause) {
                errors.push(SpecError::InvalidDuration {
                    field: format!("{field}.pause"),
                    value: pause.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    if let Err(e) = parse_duration(&spec.monitoring.for_duration) {
        errors.push(SpecError::InvalidDuration {
            field: "spec.monitoring.forDuration".into(),
            value: spec.monitoring.for_duration.clone(),
            reason: e.to_string(),
        });
    }
}

fn check_rollback_target(
    spec: &DeepSeekDeploymentSpec,
    status: Option<&DeepSeekDeploymentStatus>,
    errors: &mut Vec<SpecError>,
) {
    let Some(target) = &spec.rollout.rollback_to else {
        return;
    };
    let history = status.map(|s| s.history.as_slice()).unwrap_or_default();
    let stable = status
        .and_then(|s| s.stable_revision.as_ref())
        .map(|r| r.hash.as_str());
    // Rolling back to the revision that is already stable is a no-op, not an error: it is what
    // the spec looks like right after a manual rollback completed.
    if stable == Some(target.as_str()) || history.iter().any(|h| &h.hash == target) {
        return;
    }
    let known = history
        .iter()
        .map(|h| h.hash.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    errors.push(SpecError::RollbackTargetNotInHistory {
        field: "spec.rollout.rollbackTo".into(),
        revision: target.clone(),
        known: if known.is_empty() {
            "none".into()
        } else {
            known
        },
    });
}

fn check_backup(spec: &DeepSeekDeploymentSpec, errors: &mut Vec<SpecError>) {
    let Some(backup) = &spec.backup else { return };
    let count = usize::from(backup.destination.pvc.is_some())
        + usize::from(backup.destination.s3.is_some());
    if count != 1 {
        errors.push(SpecError::OneOfViolated {
            field: "spec.backup.destination".into(),
            members: "pvc, s3".into(),
            count,
        });
    }
    if !is_cron_schedule(&backup.schedule) {
        errors.push(SpecError::InvalidCronSchedule {
            field: "spec.backup.schedule".into(),
            value: backup.schedule.clone(),
        });
    }
}

#[cfg(test)]
#[path = "validate_env_tests.rs"]
mod env_tests;
#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
