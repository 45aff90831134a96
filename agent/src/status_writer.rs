//! Writes this node's `status.endpointStatuses` entries of one SWH: server-side apply on the
//! status subresource with field manager `swh-agent-<node>`. Each node applies only its own
//! entries (the list is a map keyed by podName), so agents never overwrite each other, and an
//! applied set that omits a pod removes that pod's entry this manager owned. The aggregate fields
//! and conditions belong to the controller and are never sent.

use kube::api::{Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::{Api, Client};
use swh_api::v1beta1::{EndpointStatus, ServiceWithHealthchecks};

#[derive(Debug, thiserror::Error)]
pub enum StatusWriteError {
    #[error("applying status of {ns}/{name}: {source}")]
    Apply {
        ns: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What to do after a failed write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The object is gone: nothing to write.
    Gone,
    /// The server rejected the request (4xx other than 401/403/409/429): retrying the same
    /// request would fail the same way; the next change writes again.
    Rejected,
    /// Transient (5xx, 409, 429, transport) or fixable outside (401/403: credentials or RBAC):
    /// retry with backoff (at most every 30 s).
    Retry,
}

/// Classifies a failed API call.
pub fn disposition(e: &kube::Error) -> Disposition {
    match e {
        kube::Error::Api(s) if s.is_not_found() => Disposition::Gone,
        kube::Error::Api(s)
            if (400..500).contains(&s.code) && ![401, 403, 409, 429].contains(&s.code) =>
        {
            Disposition::Rejected
        }
        _ => Disposition::Retry,
    }
}

impl StatusWriteError {
    pub fn disposition(&self) -> Disposition {
        match self {
            StatusWriteError::Apply { source, .. } => disposition(source),
        }
    }
}

/// Field manager of a node's status entries.
pub fn field_manager(node: &str) -> String {
    // Field manager names are limited to 128 characters.
    let m = format!("swh-agent-{node}");
    if m.len() <= 128 {
        m
    } else {
        format!("swh-agent-{}", crate::slices::fit_name(node))
    }
}

/// The apply body: only `status.endpointStatuses` with this node's entries. An empty list
/// releases every entry this manager owned (omitting the field instead could leave `status`
/// empty, which the schema rejects as null).
pub fn apply_body(name: &str, entries: &[EndpointStatus]) -> serde_json::Value {
    let mut status = serde_json::Map::new();
    status.insert(
        "endpointStatuses".into(),
        serde_json::to_value(entries).unwrap_or(serde_json::Value::Array(Vec::new())),
    );
    serde_json::json!({
        "apiVersion": swh_api::API_VERSION_V1BETA1,
        "kind": swh_api::KIND,
        "metadata": {"name": name},
        "status": status,
    })
}

pub async fn apply(
    client: &Client,
    node: &str,
    ns: &str,
    name: &str,
    entries: &[EndpointStatus],
) -> Result<(), StatusWriteError> {
    let api: Api<DeserializeGuard<ServiceWithHealthchecks>> = Api::namespaced(client.clone(), ns);
    api.patch_status(
        name,
        &PatchParams::apply(&field_manager(node)).force(),
        &Patch::Apply(apply_body(name, entries)),
    )
    .await
    .map(|_| ())
    .map_err(|source| StatusWriteError::Apply {
        ns: ns.to_string(),
        name: name.to_string(),
        source,
    })
}
