//! Keeps an SWH's writes free of the conversion webhook.
//!
//! The API server's field manager converts the object into the API version of every entry in
//! `metadata.managedFields` on each write, status writes included (structured-merge-diff's
//! `Updater.update` compares old and new object per manager version). An SWH created or
//! edited with `kubectl apply`/`create`/`edit` in `v1alpha1` carries an `Update` entry in
//! `v1alpha1`, so while the conversion webhook is down every write to it fails, and the
//! agents' and the controller's status stays stale for the whole outage.
//!
//! The controller therefore drops such entries (`Update` operations recorded in another
//! version than the storage version `v1beta1`) while the webhook is up, in one conditional
//! write. What is lost is only ownership bookkeeping of imperative writers: client-side
//! `kubectl apply` keeps its own record in the last-applied annotation. `Apply` entries
//! (server-side apply by a user or a GitOps tool in `v1alpha1`) are kept: their field sets
//! decide what a later apply prunes. Those objects still need the webhook for every write;
//! applying them as `v1beta1` avoids it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

use swh_api::API_VERSION_V1BETA1;

/// Whether an entry makes every write convert the object through the webhook and may go.
fn droppable(e: &ManagedFieldsEntry) -> bool {
    e.operation.as_deref() == Some("Update")
        && e.api_version
            .as_deref()
            .is_some_and(|v| v != API_VERSION_V1BETA1)
}

/// The managedFields to write back when some entries are droppable; `None` when there is
/// nothing to do. An empty result is sent as one empty entry, which the API server reads as
/// "reset" (an empty list would mean "unchanged").
pub fn without_conversion_bound_updates(
    entries: &[ManagedFieldsEntry],
) -> Option<Vec<serde_json::Value>> {
    if !entries.iter().any(droppable) {
        return None;
    }
    let kept: Vec<serde_json::Value> = entries
        .iter()
        .filter(|e| !droppable(e))
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect();
    Some(if kept.is_empty() {
        vec![serde_json::json!({})]
    } else {
        kept
    })
}

/// Managers whose entries [`without_conversion_bound_updates`] drops (for the log and event).
pub fn dropped_managers(entries: &[ManagedFieldsEntry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| droppable(e))
        .map(|e| {
            format!(
                "{} ({})",
                e.manager.as_deref().unwrap_or("<unnamed>"),
                e.api_version.as_deref().unwrap_or("<no version>")
            )
        })
        .collect()
}

/// For the controller's SWH cache: managedFields stripped (memory), except the headers of
/// conversion-bound entries (no field sets), so a reconcile knows whether [`release`] has
/// something to do without a read.
pub fn strip_keeping_conversion_bound(swh: &mut swh_api::v1beta1::ServiceWithHealthchecks) {
    let kept: Vec<ManagedFieldsEntry> = swh
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| droppable(e))
        .map(|e| ManagedFieldsEntry {
            manager: e.manager.clone(),
            operation: e.operation.clone(),
            api_version: e.api_version.clone(),
            ..Default::default()
        })
        .collect();
    swh.metadata.managed_fields = (!kept.is_empty()).then_some(kept);
}

/// Drops the conversion-bound entries of an SWH (see the module docs) in one write,
/// conditional on the resource version of the full object it reads first (the cache holds
/// only the entries' headers). Returns the managers dropped (empty when there was nothing to
/// do).
pub async fn release(
    client: &kube::Client,
    cached: &swh_api::v1beta1::ServiceWithHealthchecks,
) -> Result<Vec<String>, kube::Error> {
    let cached_entries = cached
        .metadata
        .managed_fields
        .as_deref()
        .unwrap_or_default();
    if !cached_entries.iter().any(droppable) {
        return Ok(Vec::new());
    }
    let (Some(ns), Some(name)) = (
        cached.metadata.namespace.as_deref(),
        cached.metadata.name.as_deref(),
    ) else {
        return Ok(Vec::new());
    };
    let api: kube::Api<swh_api::v1beta1::ServiceWithHealthchecks> =
        kube::Api::namespaced(client.clone(), ns);
    let swh = api.get(name).await?;
    let entries = swh.metadata.managed_fields.as_deref().unwrap_or_default();
    let Some(kept) = without_conversion_bound_updates(entries) else {
        return Ok(Vec::new());
    };
    // A merge patch replaces the list as a whole; the resource version makes it conditional.
    let patch = serde_json::json!({"metadata": {
        "resourceVersion": swh.metadata.resource_version,
        "managedFields": kept,
    }});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(dropped_managers(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, op: &str, version: &str) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(op.into()),
            api_version: Some(version.into()),
            fields_type: Some("FieldsV1".into()),
            ..Default::default()
        }
    }

    const A: &str = "network.deckhouse.io/v1alpha1";
    const B: &str = "network.deckhouse.io/v1beta1";

    #[test]
    fn v1alpha1_updates_go_everything_else_stays() {
        let entries = vec![
            entry("kubectl-client-side-apply", "Update", A),
            entry("argocd", "Apply", A),
            entry("swh-controller", "Apply", B),
            entry("kubectl-edit", "Update", B),
        ];
        let kept = without_conversion_bound_updates(&entries).expect("something to drop");
        let managers: Vec<&str> = kept.iter().filter_map(|v| v["manager"].as_str()).collect();
        assert_eq!(managers, ["argocd", "swh-controller", "kubectl-edit"]);
        assert_eq!(
            dropped_managers(&entries),
            ["kubectl-client-side-apply (network.deckhouse.io/v1alpha1)"]
        );
    }

    #[test]
    fn nothing_to_do_without_v1alpha1_updates() {
        let entries = vec![entry("swh-controller", "Apply", B), entry("x", "Apply", A)];
        assert!(without_conversion_bound_updates(&entries).is_none());
        assert!(without_conversion_bound_updates(&[]).is_none());
    }

    #[test]
    fn the_cache_keeps_only_headers_of_conversion_bound_entries() {
        let mut swh = swh_api::v1beta1::ServiceWithHealthchecks::new("web", Default::default());
        let mut csa = entry("kubectl-client-side-apply", "Update", A);
        csa.fields_v1 = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
            serde_json::json!({"f:spec": {}}),
        ));
        swh.metadata.managed_fields = Some(vec![csa, entry("swh-controller", "Apply", B)]);
        strip_keeping_conversion_bound(&mut swh);
        let kept = swh.metadata.managed_fields.clone().unwrap_or_default();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].manager.as_deref(),
            Some("kubectl-client-side-apply")
        );
        assert!(kept[0].fields_v1.is_none());
        let mut plain = swh_api::v1beta1::ServiceWithHealthchecks::new("web", Default::default());
        plain.metadata.managed_fields = Some(vec![entry("swh-controller", "Apply", B)]);
        strip_keeping_conversion_bound(&mut plain);
        assert!(plain.metadata.managed_fields.is_none());
    }

    #[test]
    fn dropping_every_entry_resets_with_one_empty_entry() {
        let entries = vec![entry("kubectl-create", "Update", A)];
        assert_eq!(
            without_conversion_bound_updates(&entries),
            Some(vec![serde_json::json!({})])
        );
    }
}
