//! Arbitrary bytes and arbitrary JSON (bare, and wrapped as reviews with a readable uid) fed to
//! every parser: nothing panics, and the answer is 200, 400 or 413.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use swh_webhook::admission::{validate_service, validate_swh};
use swh_webhook::conversion::convert;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-zA-Z0-9:/._-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("network.deckhouse.io/v1alpha1"),
            Just("network.deckhouse.io/v1beta1"),
            Just("HTTP"),
            Just("TCP"),
            Just("PostgreSQL"),
            Just("GRPC"),
            Just("CREATE"),
            Just("UPDATE"),
            Just("ServiceWithHealthchecks"),
            Just("ExternalName"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("apiVersion".to_string()),
            Just("kind".to_string()),
            Just("metadata".to_string()),
            Just("spec".to_string()),
            Just("ports".to_string()),
            Just("selector".to_string()),
            Just("healthcheck".to_string()),
            Just("probes".to_string()),
            Just("mode".to_string()),
            Just("http".to_string()),
            Just("tcp".to_string()),
            Just("postgreSQL".to_string()),
            Just("port".to_string()),
            Just("targetPort".to_string()),
            Just("name".to_string()),
            Just("annotations".to_string()),
            Just("ownerReferences".to_string()),
            Just("type".to_string()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn check(body: &[u8]) {
    let st = state();
    let rt = rt();
    for reply in [
        rt.block_on(validate_swh(body, &st.ctx)),
        rt.block_on(validate_service(body, &st.ctx)),
        convert(body),
    ] {
        assert!(
            matches!(reply.status.as_u16(), 200 | 400),
            "status {}",
            reply.status
        );
        if reply.status == 200 {
            let v: Value = serde_json::from_slice(&reply.body).expect("200 carries JSON");
            assert!(v["response"]["uid"].is_string(), "{v}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&body);
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        check(&serde_json::to_vec(&v).expect("json"));
    }

    #[test]
    fn arbitrary_objects_in_reviews_never_panic(obj in arb_json(), old in arb_json(), op in prop_oneof![Just("CREATE"), Just("UPDATE"), Just("DELETE")]) {
        let mut review = admission_review("p1", ("network.deckhouse.io", "v1alpha1", "ServiceWithHealthchecks"), op, "bob", Some(obj.clone()), Some(old.clone()));
        check(&serde_json::to_vec(&review).expect("json"));
        review["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Service"});
        check(&serde_json::to_vec(&review).expect("json"));
        let conv = conversion_review("p2", "network.deckhouse.io/v1beta1", vec![obj, old]);
        check(&serde_json::to_vec(&conv).expect("json"));
    }

    #[test]
    fn mutated_valid_objects_never_panic(
        path in prop::sample::select(vec!["/spec/ports", "/spec/healthcheck/probes/0", "/spec/healthcheck/probes/0/http", "/metadata", "/spec/selector", "/spec"]),
        value in arb_json(),
    ) {
        for base in [alpha_web(), beta_rich(), alpha_pg("x")] {
            let mut obj = base.clone();
            if let Some(slot) = obj.pointer_mut(path) {
                *slot = value.clone();
            }
            check(&serde_json::to_vec(&swh_review("p3", "CREATE", obj.clone(), None)).expect("json"));
            check(&serde_json::to_vec(&swh_review("p4", "UPDATE", obj.clone(), Some(base))).expect("json"));
            for desired in ["network.deckhouse.io/v1alpha1", "network.deckhouse.io/v1beta1"] {
                check(&serde_json::to_vec(&conversion_review("p5", desired, vec![obj.clone()])).expect("json"));
            }
        }
    }
}
