//! Writes one EndpointSlice: server-side apply with field manager `swh-agent` and force (the
//! agent owns these slices), or delete. Each call is one API request.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};

use crate::slices::FIELD_MANAGER;

#[derive(Debug, thiserror::Error)]
pub enum SliceWriteError {
    #[error("applying EndpointSlice {ns}/{name}: {source}")]
    Apply {
        ns: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting EndpointSlice {ns}/{name}: {source}")]
    Delete {
        ns: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("EndpointSlice without a name or namespace")]
    Unnamed,
}

impl SliceWriteError {
    pub fn disposition(&self) -> crate::status_writer::Disposition {
        match self {
            SliceWriteError::Apply { source, .. } | SliceWriteError::Delete { source, .. } => {
                crate::status_writer::disposition(source)
            }
            SliceWriteError::Unnamed => crate::status_writer::Disposition::Rejected,
        }
    }
}

/// The body to apply: the slice with `apiVersion`/`kind` set.
pub fn apply_body(slice: &EndpointSlice) -> serde_json::Value {
    let mut v = serde_json::to_value(slice).unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("apiVersion".into(), "discovery.k8s.io/v1".into());
        o.insert("kind".into(), "EndpointSlice".into());
    }
    v
}

/// Applies `slice`; returns the slice as stored.
pub async fn apply(
    client: &Client,
    slice: &EndpointSlice,
) -> Result<EndpointSlice, SliceWriteError> {
    let (Some(ns), Some(name)) = (
        slice.metadata.namespace.as_deref(),
        slice.metadata.name.as_deref(),
    ) else {
        return Err(SliceWriteError::Unnamed);
    };
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(apply_body(slice)),
    )
    .await
    .map_err(|source| SliceWriteError::Apply {
        ns: ns.to_string(),
        name: name.to_string(),
        source,
    })
}

/// Deletes a slice; a slice already gone is success.
pub async fn delete(client: &Client, ns: &str, name: &str) -> Result<(), SliceWriteError> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(source) => Err(SliceWriteError::Delete {
            ns: ns.to_string(),
            name: name.to_string(),
            source,
        }),
    }
}
