//! Reading the EndpointSlices of a service the way a load balancer would: which addresses are
//! ready, which are present at all.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};

/// Per address: (ready, serving, terminating) over all slices labelled with the service name.
pub type EndpointView = BTreeMap<String, (bool, bool, bool)>;

pub async fn endpoints(
    client: &Client,
    ns: &str,
    service: &str,
) -> Result<EndpointView, kube::Error> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await?;
    let mut out = EndpointView::new();
    for s in list.items {
        for e in s.endpoints {
            let c = e.conditions.unwrap_or_default();
            let ready = c.ready.unwrap_or(false);
            let serving = c.serving.unwrap_or(ready);
            let terminating = c.terminating.unwrap_or(false);
            for a in e.addresses {
                out.insert(a, (ready, serving, terminating));
            }
        }
    }
    Ok(out)
}

/// Addresses published as ready.
pub async fn ready(
    client: &Client,
    ns: &str,
    service: &str,
) -> Result<BTreeSet<String>, kube::Error> {
    Ok(endpoints(client, ns, service)
        .await?
        .into_iter()
        .filter(|(_, (r, _, _))| *r)
        .map(|(a, _)| a)
        .collect())
}
