//! Every ServiceWithHealthchecks manifest of the Deckhouse documentation
//! (reference/deckhouse-docs.ru.md, copied unchanged into tests/fixtures/) must be accepted by
//! v1alpha1: no field pruned, schema-valid with and without defaults, valid after conversion.

mod common;

use serde_json::Value;
use swh_api::{conversion, v1alpha1, v1beta1, validation};

fn fixtures() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir)
        .expect("fixtures dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("docs-") && n.ends_with(".yaml"))
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read fixture");
            let v: Value = serde_yaml::from_str(&text).expect("fixture is YAML");
            (p.display().to_string(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn all_four_docs_manifests_are_present() {
    let names: Vec<String> = fixtures()
        .iter()
        .map(|(_, v)| {
            v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["postgres-read", "postgres-write", "smtp", "web"]);
}

#[test]
fn docs_manifests_deserialize_as_v1alpha1_without_loss() {
    for (path, v) in fixtures() {
        assert_eq!(v["apiVersion"], "network.deckhouse.io/v1alpha1", "{path}");
        let typed: v1alpha1::ServiceWithHealthchecks =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{path}: {e}"));
        // Nothing dropped or added by the Rust types.
        let back = serde_json::to_value(&typed).expect("serialize");
        assert_eq!(back["spec"], v["spec"], "{path}");
    }
}

#[test]
fn docs_manifests_pass_the_v1alpha1_schema_unchanged() {
    let schema = common::version_schema("v1alpha1");
    for (path, v) in fixtures() {
        let problems = common::schema_problems(&v, &schema);
        assert!(problems.is_empty(), "{path}: {problems:?}");
        let mut defaulted = v.clone();
        common::apply_schema_defaults(&mut defaulted, &schema);
        let problems = common::schema_problems(&defaulted, &schema);
        assert!(problems.is_empty(), "{path} (defaulted): {problems:?}");
        assert_eq!(
            defaulted["spec"]["healthcheck"]["periodSeconds"], 10,
            "{path}: schema default"
        );
        assert_eq!(
            defaulted["spec"]["healthcheck"]["probes"][0]["failureThreshold"], 3,
            "{path}"
        );
    }
}

#[test]
fn docs_manifests_are_valid_after_conversion_to_v1beta1() {
    let alpha_schema = common::version_schema("v1alpha1");
    let beta_schema = common::version_schema("v1beta1");
    for (path, v) in fixtures() {
        for defaulted in [false, true] {
            let mut v = v.clone();
            if defaulted {
                common::apply_schema_defaults(&mut v, &alpha_schema);
            }
            let beta_json = conversion::convert(v.clone(), swh_api::API_VERSION_V1BETA1)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            let problems = common::schema_problems(&beta_json, &beta_schema);
            assert!(problems.is_empty(), "{path}: v1beta1 schema: {problems:?}");
            let beta: v1beta1::ServiceWithHealthchecks =
                conversion::to_v1beta1(v.clone()).unwrap_or_else(|e| panic!("{path}: {e}"));
            let errors = validation::validate(&beta, None);
            assert!(errors.is_empty(), "{path}: {errors:?}");
            // And back, exactly.
            let alpha =
                conversion::convert(beta_json, swh_api::API_VERSION_V1ALPHA1).expect("down");
            assert_eq!(alpha, v, "{path}: round trip");
        }
    }
}

#[test]
fn docs_manifests_probe_names_are_derived() {
    for (path, v) in fixtures() {
        let beta = conversion::to_v1beta1(v).expect("convert");
        let names: Vec<&str> = beta.spec.probes().iter().map(|p| p.name.as_str()).collect();
        let want = match beta.metadata.name.as_deref() {
            Some("web") => "http-0",
            Some("smtp") => "tcp-0",
            _ => "postgresql-0",
        };
        assert_eq!(names, [want], "{path}");
    }
}

#[test]
fn postgres_docs_manifest_maps_to_v1beta1_fields() {
    let (_, v) = fixtures()
        .into_iter()
        .find(|(p, _)| p.ends_with("docs-postgres-write.yaml"))
        .expect("fixture");
    let beta = conversion::to_v1beta1(v).expect("convert");
    let pg = beta.spec.probes()[0]
        .postgre_sql
        .as_ref()
        .expect("postgreSQL");
    assert_eq!(pg.auth_secret_name.as_deref(), Some("cred-secret"));
    assert_eq!(pg.effective_query(), "SELECT NOT pg_is_in_recovery()");
    assert_eq!(pg.db_name.as_deref(), Some("postgres"));
    assert_eq!(
        pg.port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(5432)
    );
}
