//! Pure: the model-verification result of one revision, from its pods' `fetch` init
//! containers (the init container verifies every file's SHA256 before the runtime starts).

use deepseek_crds::{ModelVerification, ModelVerificationState};

use crate::status::{InitState, PodObservation};

/// Model verification of `revision` from its pods: any failure wins, then any success.
pub fn model_verification(revision: &str, pods: &[PodObservation]) -> ModelVerification {
    let mine: Vec<&PodObservation> = pods
        .iter()
        .filter(|p| p.revision.as_deref() == Some(revision))
        .collect();
    let failed = mine.iter().find_map(|p| match &p.init {
        InitState::Failed {
            container,
            reason,
            message,
        } => Some(format!(
            "pod {}: init container {container} failed ({reason}): {message}",
            p.name
        )),
        _ => None,
    });
    let (state, message) = match failed {
        Some(m) => (ModelVerificationState::Failed, Some(m)),
        None if mine.iter().any(|p| p.init == InitState::Succeeded) => {
            (ModelVerificationState::Verified, None)
        }
        None => (ModelVerificationState::Pending, None),
    };
    ModelVerification {
        state,
        revision: Some(revision.to_string()),
        message,
    }
}
