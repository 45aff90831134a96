//! Test helpers: a small structural-schema checker (what the API server's pruning, defaulting and
//! OpenAPI validation would do with an object), over the generated CRD.

#![allow(dead_code)]

use serde_json::{Map, Value};

/// The openAPIV3Schema of `version` in the generated CRD.
pub fn version_schema(version: &str) -> Value {
    let crd = serde_json::to_value(swh_api::crd::crd()).expect("crd json");
    crd["spec"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["name"] == version)
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .expect("version present")
}

/// Problems the API server's schema validation (and pruning) would report for `obj`
/// (apiVersion/kind/metadata are not checked).
pub fn schema_problems(obj: &Value, schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match schema["properties"].get(k) {
                Some(s) => check(v, s, k, &mut out),
                None => out.push(format!("{k}: unknown field")),
            }
        }
    }
    out
}

fn check(v: &Value, s: &Value, path: &str, out: &mut Vec<String>) {
    if s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(v.is_i64() || v.is_string()) {
            out.push(format!("{path}: must be integer or string"));
        }
        return;
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        out.push(format!("{path}: {v} not in enum {e:?}"));
    }
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(m) = v.as_object() else {
                out.push(format!("{path}: must be an object"));
                return;
            };
            for r in s["required"].as_array().into_iter().flatten() {
                if let Some(r) = r.as_str()
                    && !m.contains_key(r)
                {
                    out.push(format!("{path}.{r}: required"));
                }
            }
            for (k, child) in m {
                let p = format!("{path}.{k}");
                if let Some(cs) = s["properties"].get(k) {
                    check(child, cs, &p, out);
                } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    check(child, ap, &p, out);
                } else if s.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true))
                {
                    out.push(format!("{p}: unknown field (would be pruned)"));
                }
            }
        }
        Some("array") => {
            let Some(a) = v.as_array() else {
                out.push(format!("{path}: must be an array"));
                return;
            };
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && a.len() as u64 > max
            {
                out.push(format!("{path}: more than {max} items"));
            }
            for (i, child) in a.iter().enumerate() {
                check(child, &s["items"], &format!("{path}[{i}]"), out);
            }
        }
        Some("string") => match v.as_str() {
            None => out.push(format!("{path}: must be a string")),
            Some(st) => {
                if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                    && st.chars().count() as u64 > max
                {
                    out.push(format!("{path}: longer than {max}"));
                }
            }
        },
        Some("integer") => match v.as_i64() {
            None => out.push(format!("{path}: must be an integer")),
            Some(n) => {
                if let Some(min) = s.get("minimum").and_then(Value::as_f64)
                    && (n as f64) < min
                {
                    out.push(format!("{path}: below minimum {min}"));
                }
                if let Some(max) = s.get("maximum").and_then(Value::as_f64)
                    && (n as f64) > max
                {
                    out.push(format!("{path}: above maximum {max}"));
                }
            }
        },
        Some("boolean") if !v.is_boolean() => out.push(format!("{path}: must be a boolean")),
        _ => {}
    }
}

/// Apply schema defaults the way the API server does (recursively, on present objects).
pub fn apply_schema_defaults(obj: &mut Value, schema: &Value) {
    if let Some(m) = obj.as_object_mut() {
        for (k, v) in m.iter_mut() {
            if let Some(s) = schema["properties"].get(k) {
                default_rec(v, s);
            }
        }
    }
}

fn default_rec(v: &mut Value, s: &Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = s["properties"].as_object() {
                for (k, ps) in props {
                    if !m.contains_key(k)
                        && let Some(d) = ps.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                }
                let m: &mut Map<String, Value> = m;
                for (k, child) in m.iter_mut() {
                    if let Some(cs) = props.get(k) {
                        default_rec(child, cs);
                    }
                }
            }
        }
        Value::Array(a) => {
            for child in a {
                default_rec(child, &s["items"]);
            }
        }
        _ => {}
    }
}
