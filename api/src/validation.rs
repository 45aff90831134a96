//! Admission validation of v1beta1 objects (the webhook layer: what schema and CEL can't say).

use crate::v1beta1::ServiceWithHealthchecks;

/// One problem, with the field path and a message saying what is wrong and what would be valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `spec.healthcheck.probes[1].http`.
    pub path: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Every problem of `new` (and of the update from `old`, when given). Empty means valid.
pub fn validate(
    new: &ServiceWithHealthchecks,
    old: Option<&ServiceWithHealthchecks>,
) -> Vec<FieldError> {
    let _ = (new, old);
    Vec::new()
}

/// Soft issues to return as admission warnings.
pub fn warnings(new: &ServiceWithHealthchecks) -> Vec<String> {
    let _ = new;
    Vec::new()
}
