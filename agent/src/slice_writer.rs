//! Writes one EndpointSlice: server-side apply with field manager `swh-agent` and force (the
//! agent owns these slices), or delete. Each call is one API request.
//!
//! Every apply carries [`LAST_CHANGE_TRIGGER_TIME`] (so a later apply never drops it): the
//! slice's own when the caller set one ([`crate::slices::set_trigger_time`], the time of the
//! event), else the time of the write.

use std::time::SystemTime;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};

use crate::slices::{FIELD_MANAGER, LAST_CHANGE_TRIGGER_TIME, rfc3339_nanos, trigger_time_of};

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

/// [`apply_body`] with [`LAST_CHANGE_TRIGGER_TIME`] set to `now` unless `slice` has one.
pub fn apply_body_at(slice: &EndpointSlice, now: SystemTime) -> serde_json::Value {
    let mut v = apply_body(slice);
    if trigger_time_of(slice).is_some() {
        return v;
    }
    let (Some(t), Some(meta)) = (
        rfc3339_nanos(now),
        v.get_mut("metadata").and_then(|m| m.as_object_mut()),
    ) else {
        return v;
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if let Some(a) = annotations.as_object_mut() {
        a.insert(LAST_CHANGE_TRIGGER_TIME.into(), t.into());
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
        &Patch::Apply(apply_body_at(slice, SystemTime::now())),
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn slice(annotations: Option<&[(&str, &str)]>) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some("web-node-a-ipv4".into()),
                namespace: Some("ns".into()),
                annotations: annotations.map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                }),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_apply_carries_a_trigger_time() {
        let now = UNIX_EPOCH + Duration::new(1_795_000_000, 1_000);
        let body = apply_body_at(&slice(None), now);
        assert_eq!(
            body["metadata"]["annotations"][LAST_CHANGE_TRIGGER_TIME],
            "2026-11-18T11:06:40.000001Z"
        );
        assert_eq!(body["kind"], "EndpointSlice");
        // Other annotations stay; one set by the caller (the event's time) wins over `now`.
        let body = apply_body_at(&slice(Some(&[("example.com/x", "1")])), now);
        assert_eq!(body["metadata"]["annotations"]["example.com/x"], "1");
        assert_eq!(
            body["metadata"]["annotations"][LAST_CHANGE_TRIGGER_TIME],
            "2026-11-18T11:06:40.000001Z"
        );
        let set = slice(Some(&[(
            LAST_CHANGE_TRIGGER_TIME,
            "2026-11-18T11:00:00.5Z",
        )]));
        let body = apply_body_at(&set, now);
        assert_eq!(
            body["metadata"]["annotations"][LAST_CHANGE_TRIGGER_TIME],
            "2026-11-18T11:00:00.5Z"
        );
    }
}
