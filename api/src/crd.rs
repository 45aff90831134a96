//! The CRD: both versions merged, storage v1beta1, conversion webhook, identical names and
//! printer columns on every version.
//!
//! The committed YAML (`config/crd/servicewithhealthchecks.yaml`) is generated from [`crd()`];
//! a unit test fails when it drifts (`SWH_UPDATE_CRD=1 cargo test -p swh-api crd` rewrites it).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceConversion, CustomResourceDefinition,
    ServiceReference, WebhookClientConfig, WebhookConversion,
};
use kube::CustomResourceExt;
use serde_json::Value;

use crate::{v1alpha1, v1beta1};

/// Placeholder URL of the conversion webhook; the installer replaces the client config (and adds
/// the caBundle).
pub const CONVERSION_URL_PLACEHOLDER: &str = "https://127.0.0.1:9443/convert";

/// Short name of the resource.
pub const SHORT_NAME: &str = "swh";

/// Category (`kubectl get deckhouse`).
pub const CATEGORY: &str = "deckhouse";

/// The printer columns, identical on every version.
pub fn printer_columns() -> Vec<CustomResourceColumnDefinition> {
    let col = |name: &str, type_: &str, json_path: &str, description: &str| {
        CustomResourceColumnDefinition {
            name: name.into(),
            type_: type_.into(),
            json_path: json_path.into(),
            description: Some(description.into()),
            format: None,
            priority: None,
        }
    };
    vec![
        col("Type", "string", ".spec.type", "Service type"),
        col(
            "Cluster-IP",
            "string",
            ".status.clusterIP",
            "ClusterIP of the child Service",
        ),
        col(
            "Ready",
            "string",
            ".status.ready",
            "Published endpoints / selected pods",
        ),
        col(
            "Probes",
            "string",
            ".spec.healthcheck.probes[*].mode",
            "Probe modes",
        ),
        col("Age", "date", ".metadata.creationTimestamp", "Age"),
    ]
}

/// The full CRD: v1alpha1 (served) and v1beta1 (served, storage), conversion webhook.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = match kube::core::crd::merge_crds(
        vec![
            v1alpha1::ServiceWithHealthchecks::crd(),
            v1beta1::ServiceWithHealthchecks::crd(),
        ],
        "v1beta1",
    ) {
        Ok(crd) => crd,
        // Unreachable: both inputs come from the same derive with the same group/kind/scope.
        Err(_) => v1beta1::ServiceWithHealthchecks::crd(),
    };
    crd.metadata.labels = Some(
        [("app.kubernetes.io/part-of".to_string(), "swh".to_string())]
            .into_iter()
            .collect(),
    );
    crd.spec.names.short_names = Some(vec![SHORT_NAME.into()]);
    crd.spec.names.categories = Some(vec![CATEGORY.into()]);
    crd.spec.names.list_kind = Some(format!("{}List", crate::KIND));
    // v1alpha1 first (oldest first), as kubectl lists them.
    crd.spec.versions.sort_by(|a, b| a.name.cmp(&b.name));
    for v in &mut crd.spec.versions {
        v.additional_printer_columns = Some(printer_columns());
        if let Some(schema) = v
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            let mut value = serde_json::to_value(&*schema).unwrap_or(Value::Null);
            normalize_schema(&mut value);
            if let Ok(s) = serde_json::from_value(value) {
                *schema = s;
            }
        }
    }
    crd.spec.conversion = Some(CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(WebhookConversion {
            conversion_review_versions: vec!["v1".into()],
            client_config: Some(WebhookClientConfig {
                url: Some(CONVERSION_URL_PLACEHOLDER.into()),
                ca_bundle: None,
                service: None::<ServiceReference>,
            }),
        }),
    });
    crd
}

/// Drop `nullable: true` (so the API server prunes nulls and applies defaults, as for built-in
/// types) and write integral numbers (minimum/maximum) as integers.
fn normalize_schema(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
            }
            for (k, child) in map.iter_mut() {
                if matches!(k.as_str(), "minimum" | "maximum")
                    && let Some(f) = child.as_f64()
                    && f.fract() == 0.0
                {
                    *child = Value::from(f as i64);
                    continue;
                }
                if k == "default" || k == "enum" || k == "example" {
                    continue;
                }
                normalize_schema(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_schema),
        _ => {}
    }
}

/// The CRD as YAML (what `config/crd/servicewithhealthchecks.yaml` holds).
pub fn crd_yaml() -> Result<String, serde_json::Error> {
    let mut value = serde_json::to_value(crd())?;
    normalize_schema(&mut value);
    let mut out = String::from(
        "# Generated by `SWH_UPDATE_CRD=1 cargo test -p swh-api crd` from api/src. Do not edit.\n",
    );
    yaml::write_document(&value, &mut out);
    Ok(out)
}

mod yaml {
    //! A tiny deterministic YAML emitter for JSON values (block style, quoted strings when
    //! needed), so the api crate needs no YAML dependency.
    use serde_json::Value;

    pub fn write_document(v: &Value, out: &mut String) {
        write_value(v, 0, out, false);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }

    fn indent(n: usize, out: &mut String) {
        for _ in 0..n {
            out.push(' ');
        }
    }

    fn is_scalar(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => true,
        }
    }

    fn scalar(v: &Value) -> String {
        match v {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => string(s),
            Value::Object(_) => "{}".into(),
            Value::Array(_) => "[]".into(),
        }
    }

    fn string(s: &str) -> String {
        let plain_ok = !s.is_empty()
            && s.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ' ' | '(' | ')')
            })
            && !s.starts_with([' ', '-', '.'])
            && !s.ends_with(' ')
            && !matches!(
                s.to_ascii_lowercase().as_str(),
                "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
            )
            && s.parse::<f64>().is_err();
        if plain_ok {
            s.to_string()
        } else {
            // JSON strings are valid YAML double-quoted scalars.
            serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
        }
    }

    /// Writes `v` whose key (or dash) has already been written on the current line.
    fn write_value(v: &Value, level: usize, out: &mut String, inline_first: bool) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                let mut first = true;
                for (k, child) in m {
                    if !(first && inline_first) {
                        indent(level, out);
                    }
                    first = false;
                    out.push_str(&string(k));
                    out.push(':');
                    if is_scalar(child) {
                        out.push(' ');
                        out.push_str(&scalar(child));
                        out.push('\n');
                    } else {
                        out.push('\n');
                        write_value(child, level + 2, out, false);
                    }
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for child in a {
                    indent(level, out);
                    out.push_str("- ");
                    if is_scalar(child) {
                        out.push_str(&scalar(child));
                        out.push('\n');
                    } else if child.is_object() {
                        write_value(child, level + 2, out, true);
                    } else {
                        out.push('\n');
                        write_value(child, level + 2, out, false);
                    }
                }
            }
            other => {
                indent(level, out);
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRD_PATH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/crd/servicewithhealthchecks.yaml"
    );

    #[test]
    fn crd_yaml_is_up_to_date() {
        let want = crd_yaml().expect("crd serializes");
        if std::env::var_os("SWH_UPDATE_CRD").is_some() {
            std::fs::write(CRD_PATH, &want).expect("write CRD yaml");
            return;
        }
        let have = std::fs::read_to_string(CRD_PATH).unwrap_or_default();
        assert!(
            have == want,
            "config/crd/servicewithhealthchecks.yaml is stale or missing: run \
             `SWH_UPDATE_CRD=1 cargo test -p swh-api crd` and commit the result"
        );
    }

    #[test]
    fn crd_has_both_versions_and_conversion() {
        let crd = crd();
        let names: Vec<_> = crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.storage, v.served))
            .collect();
        assert_eq!(
            names,
            vec![("v1alpha1", false, true), ("v1beta1", true, true)]
        );
        let conv = crd.spec.conversion.as_ref().expect("conversion");
        assert_eq!(conv.strategy, "Webhook");
        let wh = conv.webhook.as_ref().expect("webhook");
        assert_eq!(wh.conversion_review_versions, vec!["v1".to_string()]);
        assert_eq!(
            wh.client_config.as_ref().and_then(|c| c.url.as_deref()),
            Some(CONVERSION_URL_PLACEHOLDER)
        );
        assert_eq!(crd.spec.names.short_names, Some(vec!["swh".to_string()]));
        for v in &crd.spec.versions {
            assert_eq!(v.additional_printer_columns, Some(printer_columns()));
            assert!(
                v.subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some()
            );
        }
        let v = serde_json::to_value(&crd).expect("json");
        let beta = &v["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"];
        let es = &beta["status"]["properties"]["endpointStatuses"];
        assert_eq!(es["x-kubernetes-list-type"], "map");
        assert_eq!(
            es["x-kubernetes-list-map-keys"],
            serde_json::json!(["podName"])
        );
        let probes = &es["items"]["properties"]["probes"];
        assert_eq!(
            probes["x-kubernetes-list-map-keys"],
            serde_json::json!(["name"])
        );
        let spec_probes = &beta["spec"]["properties"]["healthcheck"]["properties"]["probes"];
        assert_eq!(
            spec_probes["x-kubernetes-list-map-keys"],
            serde_json::json!(["name"])
        );
        assert_eq!(spec_probes["maxItems"], 32);
        let rules = spec_probes["items"]["x-kubernetes-validations"].to_string();
        for want in [
            "has(self.http)",
            "has(self.grpc)",
            "timeoutSeconds <= self.periodSeconds",
        ] {
            assert!(rules.contains(want), "missing CEL rule {want}: {rules}");
        }
        let ports = &beta["spec"]["properties"]["ports"];
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            serde_json::json!(["port", "protocol"])
        );
        assert_eq!(ports["items"]["properties"]["protocol"]["default"], "TCP");
        let json = serde_json::to_string(&crd).expect("json");
        assert!(!json.contains("\"nullable\""), "nullable must be stripped");
    }
}
