//! `-o json|yaml|name`: objects as kubectl prints them (managedFields hidden, several objects
//! wrapped in a `List`).

use serde_json::{Value, json};

/// `servicewithhealthchecks.network.deckhouse.io`, the resource prefix of `-o name`.
pub fn resource_prefix() -> String {
    format!("{}.{}", swh_api::PLURAL, swh_api::GROUP)
}

/// Removes `metadata.managedFields` (kubectl hides them unless --show-managed-fields).
pub fn strip_managed_fields(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            strip_managed_fields(item);
        }
    }
}

/// The objects as one value: the object itself when `single`, else a `v1` `List`.
pub fn document(mut objs: Vec<Value>, single: bool) -> Value {
    for o in &mut objs {
        strip_managed_fields(o);
    }
    if single && objs.len() == 1 {
        return objs.pop().unwrap_or(Value::Null);
    }
    json!({
        "apiVersion": "v1",
        "items": objs,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

/// JSON with kubectl's 4-space indentation and a final newline.
pub fn to_json(v: &Value) -> Result<String, serde_json::Error> {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser)?;
    buf.push(b'\n');
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// YAML (block style, as kubectl prints it).
pub fn to_yaml(v: &Value) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(v)
}

/// `-o name` lines: `servicewithhealthchecks.network.deckhouse.io/NAME`.
pub fn names(objs: &[Value]) -> String {
    let prefix = resource_prefix();
    objs.iter()
        .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
        .map(|n| format!("{prefix}/{n}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str) -> Value {
        json!({
            "apiVersion": "network.deckhouse.io/v1beta1",
            "kind": "ServiceWithHealthchecks",
            "metadata": {
                "name": name,
                "namespace": "vm",
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {"selector": {"vm": "my-vm"}},
        })
    }

    #[test]
    fn single_object_json_without_managed_fields() {
        let out = to_json(&document(vec![obj("web")], true)).expect("json");
        assert!(!out.contains("managedFields"), "{out}");
        let back: Value = serde_json::from_str(&out).expect("valid json");
        assert_eq!(back["kind"], "ServiceWithHealthchecks");
        assert_eq!(back["metadata"]["name"], "web");
        assert!(
            out.starts_with("{\n    \"apiVersion\""),
            "4-space indent: {out}"
        );
        assert!(out.ends_with("}\n"));
    }

    #[test]
    fn several_objects_form_a_list() {
        let out = to_yaml(&document(vec![obj("web"), obj("smtp")], false)).expect("yaml");
        assert!(!out.contains("managedFields"), "{out}");
        let back: Value = serde_yaml::from_str(&out).expect("valid yaml");
        assert_eq!(back["kind"], "List");
        assert_eq!(back["apiVersion"], "v1");
        assert_eq!(back["items"][1]["metadata"]["name"], "smtp");
        assert_eq!(back["metadata"]["resourceVersion"], "");
    }

    #[test]
    fn list_view_of_one_object_is_still_a_list() {
        let v = document(vec![obj("web")], false);
        assert_eq!(v["kind"], "List");
        let empty = document(vec![], false);
        assert_eq!(empty["items"], json!([]));
    }

    #[test]
    fn yaml_has_no_managed_fields() {
        let out = to_yaml(&document(vec![obj("web")], true)).expect("yaml");
        assert!(
            out.starts_with("apiVersion: network.deckhouse.io/v1beta1\n"),
            "{out}"
        );
        assert!(!out.contains("managedFields"));
        assert!(out.contains("name: web"));
    }

    #[test]
    fn name_output() {
        assert_eq!(
            names(&[obj("web"), obj("smtp")]),
            "servicewithhealthchecks.network.deckhouse.io/web\nservicewithhealthchecks.network.deckhouse.io/smtp\n"
        );
    }
}
