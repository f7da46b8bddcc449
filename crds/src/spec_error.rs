//! The one error type of semantic validation: each variant names the field path it is about,
//! so the operator's status condition and Event can point at it.

use crate::MAX_NAME_LEN;

/// One reason a spec is rejected; `field` is the path, e.g. `spec.model.files[1].path`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The resource name is too long or not a DNS-1035 label (it names Services, which must
    /// start with a letter).
    #[error("{field}: {name:?} must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter) of at most {max} characters", max = MAX_NAME_LEN)]
    InvalidName { field: String, name: String },
    /// Two `runtime.env` entries with one name.
    #[error("{field}: duplicate environment variable {name:?}")]
    DuplicateEnvName { field: String, name: String },
    /// A `runtime.env` entry naming a variable the operator sets.
    #[error("{field}: {name:?} is set by the operator and cannot be overridden")]
    ReservedEnvName { field: String, name: String },
    /// Not an extended resource name like `nvidia.com/gpu`.
    #[error("{field}: {value:?} is not an extended resource name (DOMAIN/NAME outside kubernetes.io, e.g. nvidia.com/gpu)")]
    InvalidGpuResourceName { field: String, value: String },
    /// `auth` without any credential source: it would let nobody in.
    #[error("{field}: auth needs jwtSecretRef, jwtPublicKeyRef, jwksRef or apiKeysRef")]
    AuthWithoutCredentials { field: String },
    /// No file at all.
    #[error("{field}: at least one model file is required")]
    NoFiles { field: String },
    /// A digest that is not 64 lowercase hex characters.
    #[error("{field}: {value:?} is not a lowercase hex SHA256 (64 characters)")]
    InvalidSha256 { field: String, value: String },
    /// The same path twice.
    #[error("{field}: duplicate file path {path:?}")]
    DuplicateFilePath { field: String, path: String },
    /// Absolute, empty-segment or `..` paths would escape the model directory.
    #[error("{field}: {path:?} must be a relative path without '..' or empty segments")]
    UnsafeFilePath { field: String, path: String },
    /// A file the format needs is missing.
    #[error("{field}: a {format} model needs {expected}")]
    MissingModelFile {
        field: String,
        format: String,
        expected: String,
    },
    /// A weights file of the other format.
    #[error("{field}: {path:?} is not a {format} file")]
    FormatFileMismatch {
        field: String,
        format: String,
        path: String,
    },
    /// A quantization that the format cannot hold.
    #[error("{field}: {value:?} is not valid for {format} (safetensors: bf16, f16, f32)")]
    QuantizationMismatch {
        field: String,
        format: String,
        value: String,
    },
    /// Zero or several of the one-of members set.
    #[error("{field}: exactly one of {members} must be set, found {count}")]
    OneOfViolated {
        field: String,
        members: String,
        count: usize,
    },
    /// A weight outside 0..=100.
    #[error("{field}: weight {weight} must be between 0 and 100")]
    WeightOutOfRange { field: String, weight: i32 },
    /// A weight not above the previous step's.
    #[error("{field}: weight {weight} must be greater than the previous step's {previous}")]
    WeightsNotAscending {
        field: String,
        previous: i32,
        weight: i32,
    },
    /// A duration that does not parse.
    #[error("{field}: {value:?} is not a duration such as 30s, 5m, 1h30m ({reason})")]
    InvalidDuration {
        field: String,
        value: String,
        reason: String,
    },
    /// `rollbackTo` names a revision not in `status.history`.
    #[error("{field}: revision {revision:?} is not in status.history (known: {known})")]
    RollbackTargetNotInHistory {
        field: String,
        revision: String,
        known: String,
    },
    /// The PDB would block every voluntary disruption.
    #[error("{field}: {min_available} exceeds replicas {replicas}")]
    PdbMinAvailableTooLarge {
        field: String,
        min_available: i32,
        replicas: i32,
    },
    /// Some zone would get no replica.
    #[error("{field}: {replicas} replicas cannot cover {zones} zones (each zone needs one)")]
    TooFewReplicasForZones {
        field: String,
        replicas: i32,
        zones: usize,
    },
    /// `extraArgs` overriding a flag the operator sets.
    #[error("{field}: {arg:?} is set by the operator and cannot be overridden")]
    ReservedArgument { field: String, arg: String },
    /// Not a five-field cron expression or macro.
    #[error("{field}: {value:?} is not a cron schedule (five fields, or @hourly/@daily/@weekly/@monthly)")]
    InvalidCronSchedule { field: String, value: String },
}

impl SpecError {
    /// Field path the error is about.
    pub fn field(&self) -> &str {
        match self {
            Self::InvalidName { field, .. }
            | Self::InvalidGpuResourceName { field, .. }
            | Self::NoFiles { field }
            | Self::InvalidSha256 { field, .. }
            | Self::DuplicateFilePath { field, .. }
            | Self::UnsafeFilePath { field, .. }
            | Self::MissingModelFile { field, .. }
            | Self::FormatFileMismatch { field, .. }
            | Self::QuantizationMismatch { field, .. }
            | Self::OneOfViolated { field, .. }
            | Self::WeightOutOfRange { field, .. }
            | Self::WeightsNotAscending { field, .. }
            | Self::InvalidDuration { field, .. }
            | Self::RollbackTargetNotInHistory { field, .. }
            | Self::PdbMinAvailableTooLarge { field, .. }
            | Self::TooFewReplicasForZones { field, .. }
            | Self::ReservedArgument { field, .. }
            | Self::DuplicateEnvName { field, .. }
            | Self::ReservedEnvName { field, .. }
            | Self::AuthWithoutCredentials { field }
            | Self::InvalidCronSchedule { field, .. } => field,
        }
    }
}
