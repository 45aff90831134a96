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

impl StatusWriteError {
    /// The SWH is gone: nothing to retry.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StatusWriteError::Apply { source: kube::Error::Api(s), .. } if s.is_not_found())
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
