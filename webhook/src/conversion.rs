//! `/convert`: the CRD conversion webhook (ConversionReview v1) over
//! [`swh_api::conversion::convert`].
//!
//! Objects keep their order and count; of the metadata only labels and annotations may change
//! (anything else the conversion returned is put back from the input). Any object that cannot
//! be converted fails the whole review with a message naming it, the uid echoed.

use kube::core::Status;
use kube::core::TypeMeta;
use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
use serde_json::Value;
use tracing::info;

use crate::admission::Reply;

const REVIEW_API_VERSION: &str = "apiextensions.k8s.io/v1";
const REVIEW_KIND: &str = "ConversionReview";

fn reply(mut resp: ConversionResponse) -> Reply {
    let result = if resp.result.is_success() {
        "converted"
    } else {
        "failed"
    };
    resp.types = Some(TypeMeta {
        api_version: REVIEW_API_VERSION.into(),
        kind: REVIEW_KIND.into(),
    });
    match serde_json::to_vec(&resp.into_review()) {
        Ok(body) => Reply {
            status: http::StatusCode::OK,
            body,
            result,
        },
        Err(e) => Reply {
            status: http::StatusCode::INTERNAL_SERVER_ERROR,
            body: format!("encoding the ConversionReview: {e}").into_bytes(),
            result: "error",
        },
    }
}

fn object_label(obj: &Value) -> String {
    let meta = obj.get("metadata");
    let get = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    match (get("namespace"), get("name")) {
        ("", n) => n.to_string(),
        (ns, n) => format!("{ns}/{n}"),
    }
}

/// Converts one object, keeping every metadata field except labels and annotations.
pub fn convert_object(obj: Value, desired: &str) -> Result<Value, String> {
    let original_meta = obj.get("metadata").cloned();
    let mut out = swh_api::conversion::convert(obj, desired).map_err(|e| e.to_string())?;
    let converted_meta = out.get("metadata").cloned();
    if let (Some(Value::Object(orig)), Some(Value::Object(out_obj))) =
        (original_meta, converted_meta)
    {
        let mut meta = orig;
        for key in ["labels", "annotations"] {
            match out_obj.get(key) {
                Some(v) if !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()) => {
                    meta.insert(key.into(), v.clone());
                }
                _ => {
                    meta.remove(key);
                }
            }
        }
        if let Some(o) = out.as_object_mut() {
            o.insert("metadata".into(), Value::Object(meta));
        }
    }
    Ok(out)
}

/// Converts every object of `req`, or fails naming the first that does not convert.
pub fn convert_request(req: &ConversionRequest) -> Result<Vec<Value>, String> {
    req.objects
        .iter()
        .enumerate()
        .map(|(i, obj)| {
            convert_object(obj.clone(), &req.desired_api_version).map_err(|e| {
                format!(
                    "converting object {i} ({}) to {}: {e}",
                    object_label(obj),
                    req.desired_api_version
                )
            })
        })
        .collect()
}

/// `/convert`.
pub fn convert(body: &[u8]) -> Reply {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Reply::bad_request(format!("request body is not JSON: {e}")),
    };
    let Some(uid) = value
        .get("request")
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Reply::bad_request(
            "not a ConversionReview: request.uid is missing (expected apiextensions.k8s.io/v1 \
             ConversionReview with a request)",
        );
    };
    let fail = |message: String| {
        info!(%uid, %message, "conversion failed");
        let mut resp = ConversionResponse::invalid(Status::failure(&message, "BadRequest"));
        resp.uid = uid.clone();
        reply(resp)
    };
    match value.get("apiVersion").and_then(Value::as_str) {
        Some(REVIEW_API_VERSION) => {}
        other => {
            return fail(format!(
                "unsupported ConversionReview apiVersion {other:?}; this webhook speaks \
                 {REVIEW_API_VERSION} only (set conversionReviewVersions: [v1])"
            ));
        }
    }
    let review: ConversionReview = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => return fail(format!("malformed ConversionReview: {e}")),
    };
    let req = match ConversionRequest::from_review(review) {
        Ok(r) => r,
        Err(_) => return fail("malformed ConversionReview: no request".into()),
    };
    match convert_request(&req) {
        Ok(objects) => reply(ConversionResponse::for_request(req).success(objects)),
        Err(message) => fail(message),
    }
}
