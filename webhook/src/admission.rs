//! Validating admission: `/validate-swh` and `/validate-service`.
//!
//! Input handling, the same for both endpoints:
//! - not JSON, or no readable `request.uid` → HTTP 400 with a message (no review to answer);
//! - `request.uid` readable but the review does not decode → HTTP 200, `allowed: false`, the
//!   reason in `status.message` (the API server shows it to the user);
//! - otherwise the decision, always HTTP 200 with the uid echoed.
//!
//! An SWH is checked as the version it was written in (`swh_api::validation::check`): on
//! v1alpha1 only what Deckhouse would fail on too is denied (each message ends with the reason),
//! everything else risky is an admission warning naming the field; v1beta1 is stricter. Warnings
//! go out with denials too, kept within what the API server passes on.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::Value;
use swh_api::v1beta1::ServiceWithHealthchecks;
use swh_api::validation::{Checked, FieldError, Version};
use tracing::{debug, info};

/// An HTTP answer of the webhook: status code, JSON body and the metrics result label.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: http::StatusCode,
    pub body: Vec<u8>,
    pub result: &'static str,
}

impl Reply {
    pub(crate) fn bad_request(message: impl Into<String>) -> Reply {
        let body = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "BadRequest",
            "code": 400,
            "message": message.into(),
        });
        Reply {
            status: http::StatusCode::BAD_REQUEST,
            body: serde_json::to_vec(&body).unwrap_or_default(),
            result: "bad_request",
        }
    }

    fn review(resp: AdmissionResponse) -> Reply {
        let result = if resp.allowed { "allowed" } else { "denied" };
        match serde_json::to_vec(&resp.into_review()) {
            Ok(body) => Reply {
                status: http::StatusCode::OK,
                body,
                result,
            },
            Err(e) => Reply {
                status: http::StatusCode::INTERNAL_SERVER_ERROR,
                body: format!("encoding the AdmissionReview: {e}").into_bytes(),
                result: "error",
            },
        }
    }
}

/// Looks up whether a Secret exists (the API client in production, a fake in tests).
pub trait SecretLookup: Send + Sync {
    /// `Ok(true)` if `namespace/name` exists.
    fn exists<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;
}

/// [`SecretLookup`] through the API (metadata-only GET).
pub struct KubeSecrets {
    client: kube::Client,
}

impl KubeSecrets {
    pub fn new(client: kube::Client) -> KubeSecrets {
        KubeSecrets { client }
    }
}

impl SecretLookup for KubeSecrets {
    fn exists<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                kube::Api::namespaced(self.client.clone(), namespace);
            match api.get_metadata_opt(name).await {
                Ok(found) => Ok(found.is_some()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// What the admission handlers need besides the request.
pub struct Context {
    /// This identity may change child Services (the controller).
    pub controller_username: String,
    /// `None`: no API access configured, Secret checks are skipped.
    pub secrets: Option<Arc<dyn SecretLookup>>,
}

/// Budget for all Secret look-ups of one review (the API server's timeout is a few seconds).
const SECRET_CHECK_BUDGET: Duration = Duration::from_millis(1500);
/// At most this many distinct Secrets are looked up per review.
const MAX_SECRET_LOOKUPS: usize = 8;

/// Longest admission warning the API server passes on untruncated (characters).
pub const MAX_WARNING_CHARS: usize = 256;
/// Total size of admission warnings the API server passes on (bytes).
pub const MAX_WARNINGS_CHARS: usize = 4096;

/// A decoded review: the typed request plus the raw objects (not round-tripped).
struct Review {
    req: AdmissionRequest<DynamicObject>,
    object: Option<Value>,
    old_object: Option<Value>,
}

/// Steps 1-3 of the input handling (see the module docs).
fn parse_review(body: &[u8]) -> Result<Review, Reply> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Reply::bad_request(format!("request body is not JSON: {e}")))?;
    let Some(uid) = value
        .get("request")
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Err(Reply::bad_request(
            "not an AdmissionReview: request.uid is missing (expected admission.k8s.io/v1 \
             AdmissionReview with a request)",
        ));
    };
    let deny = |msg: String| {
        let mut resp = AdmissionResponse::invalid(msg);
        resp.uid = uid.clone();
        Reply::review(resp)
    };
    match value.get("apiVersion").and_then(Value::as_str) {
        Some("admission.k8s.io/v1") => {}
        other => {
            return Err(deny(format!(
                "unsupported AdmissionReview apiVersion {other:?}; this webhook speaks \
                 admission.k8s.io/v1 only (set admissionReviewVersions: [v1])"
            )));
        }
    }
    let request = value.get("request");
    let object = request
        .and_then(|r| r.get("object"))
        .filter(|v| !v.is_null())
        .cloned();
    let old_object = request
        .and_then(|r| r.get("oldObject"))
        .filter(|v| !v.is_null())
        .cloned();
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(value)
        .map_err(|e| deny(format!("malformed AdmissionReview: {e}")))?;
    let req: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|_| deny("malformed AdmissionReview: no request".to_string()))?;
    Ok(Review {
        req,
        object,
        old_object,
    })
}

fn join_errors(errs: &[FieldError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn deny_fields(resp: AdmissionResponse, what: &str, errs: &[FieldError]) -> AdmissionResponse {
    // Only a message (no code/reason/causes): the API server then reports
    // `admission webhook "<name>" denied the request: <message>`, which names the layer.
    let n = errs.len();
    resp.deny(format!(
        "{what} is invalid ({n} problem{}): {}",
        if n == 1 { "" } else { "s" },
        join_errors(errs)
    ))
}

fn object_label(req: &AdmissionRequest<DynamicObject>) -> String {
    match (&req.namespace, req.name.as_str()) {
        (Some(ns), "") => format!("{ns}/<generated>"),
        (Some(ns), n) => format!("{ns}/{n}"),
        (None, n) => n.to_string(),
    }
}

/// `/validate-swh`: CREATE and UPDATE of a ServiceWithHealthchecks in any served version.
pub async fn validate_swh(body: &[u8], ctx: &Context) -> Reply {
    let review = match parse_review(body) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let resp = decide_swh(&review, ctx).await;
    if resp.allowed {
        debug!(object = %object_label(&review.req), op = ?review.req.operation, "SWH allowed");
    } else {
        info!(object = %object_label(&review.req), op = ?review.req.operation, reason = %resp.result.message, "SWH denied");
    }
    Reply::review(resp)
}

async fn decide_swh(review: &Review, ctx: &Context) -> AdmissionResponse {
    let req = &review.req;
    let resp = AdmissionResponse::from(req);
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return resp;
    }
    if req.kind.group != swh_api::GROUP || req.kind.kind != swh_api::KIND {
        return resp.deny(format!(
            "this endpoint validates {}.{} only, got {}.{}; fix the webhook configuration's rules",
            swh_api::KIND,
            swh_api::GROUP,
            req.kind.kind,
            req.kind.group
        ));
    }
    if req.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
        return resp;
    }
    let Some(object) = review.object.clone() else {
        return resp.deny("request.object is missing");
    };
    // The version the object was written in: v1alpha1 is denied only where Deckhouse would
    // fail too (everything else risky is a warning), v1beta1 is stricter.
    let version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(Version::parse)
        .or_else(|| Version::parse(&req.kind.version))
        .unwrap_or(Version::V1beta1);
    let new = match swh_api::conversion::to_v1beta1(object) {
        Ok(o) => o,
        Err(e) => return resp.deny(format!("cannot decode the object: {e}")),
    };
    let old = match (&req.operation, review.old_object.clone()) {
        (Operation::Update, Some(o)) => swh_api::conversion::to_v1beta1(o).ok(),
        _ => None,
    };
    if let Some(old) = &old {
        // Ratcheting: an update that does not touch the spec (finalizers, labels, annotations,
        // deletion) is never blocked by a rule the stored object predates.
        if old.spec == new.spec || new.metadata.deletion_timestamp.is_some() {
            return resp;
        }
    }
    let Checked {
        errors,
        mut warnings,
    } = swh_api::validation::check(&new, old.as_ref(), version);
    if errors.is_empty()
        && let Some(secrets) = &ctx.secrets
    {
        let ns = req
            .namespace
            .clone()
            .or_else(|| new.metadata.namespace.clone())
            .unwrap_or_default();
        warnings.extend(missing_secret_warnings(secrets.as_ref(), &ns, &new).await);
    }
    let mut resp = if errors.is_empty() {
        resp
    } else {
        deny_fields(
            resp,
            &format!("ServiceWithHealthchecks {}", object_label(req)),
            &errors,
        )
    };
    // Sent with denials too: the API server passes them on either way.
    let warnings = bounded_warnings(warnings);
    if !warnings.is_empty() {
        resp.warnings = Some(warnings);
    }
    resp
}

/// The API server truncates each warning beyond [`MAX_WARNING_CHARS`] and drops warnings
/// beyond [`MAX_WARNINGS_CHARS`] in total: cut long ones at a character boundary and, when
/// there are too many, end with one that says how many were left out.
pub fn bounded_warnings(warnings: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut total = 0;
    let n = warnings.len();
    for (i, w) in warnings.into_iter().enumerate() {
        let w = if w.chars().count() > MAX_WARNING_CHARS {
            let mut cut: String = w.chars().take(MAX_WARNING_CHARS - 1).collect();
            cut.push('…');
            cut
        } else {
            w
        };
        // Room for the closing note.
        if total + w.len() + 64 > MAX_WARNINGS_CHARS {
            out.push(format!("{} more warning(s) left out", n - i));
            break;
        }
        total += w.len();
        out.push(w);
    }
    out
}

/// Names of the Secrets the probes reference, with the first probe path naming each.
fn referenced_secrets(obj: &ServiceWithHealthchecks) -> Vec<(String, String)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let probes = obj
        .spec
        .healthcheck
        .as_ref()
        .and_then(|h| h.probes.as_ref());
    for (i, p) in probes.into_iter().flatten().enumerate() {
        if let Some(name) = p
            .postgre_sql
            .as_ref()
            .and_then(|pg| pg.auth_secret_name.as_ref())
            .filter(|n| swh_api::validation::is_dns1123_subdomain(n))
            && seen.insert(name.clone())
        {
            out.push((
                name.clone(),
                format!("spec.healthcheck.probes[{i}].postgreSQL.authSecretName"),
            ));
        }
    }
    out.truncate(MAX_SECRET_LOOKUPS);
    out
}

async fn missing_secret_warnings(
    secrets: &dyn SecretLookup,
    ns: &str,
    obj: &ServiceWithHealthchecks,
) -> Vec<String> {
    let wanted = referenced_secrets(obj);
    if wanted.is_empty() || ns.is_empty() {
        return Vec::new();
    }
    let checks = futures::future::join_all(
        wanted
            .iter()
            .map(|(name, _)| secrets.exists(ns, name.as_str())),
    );
    let results = match tokio::time::timeout(SECRET_CHECK_BUDGET, checks).await {
        Ok(r) => r,
        Err(_) => {
            debug!(%ns, "Secret look-ups timed out; skipped");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for ((name, path), res) in wanted.iter().zip(results) {
        match res {
            Ok(true) => {}
            Ok(false) => out.push(format!(
                "{path}: Secret {ns}/{name} does not exist yet; the probe fails until it is \
                 created (keys user and password)"
            )),
            Err(e) => debug!(%ns, %name, error = %e, "Secret look-up failed; skipped"),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// /validate-service
// ---------------------------------------------------------------------------------------------

/// The name of the SWH owning this object (ownerReference kind ServiceWithHealthchecks,
/// apiVersion network.deckhouse.io/*), if any.
pub fn swh_owner(obj: &Value) -> Option<String> {
    let refs = obj.get("metadata")?.get("ownerReferences")?.as_array()?;
    refs.iter().find_map(|r| {
        let kind = r.get("kind").and_then(Value::as_str)?;
        let api_version = r.get("apiVersion").and_then(Value::as_str)?;
        let group = api_version.split_once('/').map(|(g, _)| g)?;
        (kind == swh_api::KIND && group == swh_api::GROUP).then(|| {
            r.get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
    })
}

fn selector(obj: Option<&Value>) -> Option<&serde_json::Map<String, Value>> {
    obj?.get("spec")?
        .get("selector")?
        .as_object()
        .filter(|m| !m.is_empty())
}

fn service_type(obj: Option<&Value>) -> &str {
    obj.and_then(|o| o.get("spec"))
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

/// The problems of a change to a child Service (empty: allowed).
pub fn child_service_problems(new: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let Some(owner) = swh_owner(new).or_else(|| old.and_then(swh_owner)) else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let new_sel = selector(Some(new));
    if new_sel.is_some() && new_sel != selector(old) {
        errs.push(FieldError {
            path: "spec.selector".into(),
            message: format!(
                "this Service belongs to ServiceWithHealthchecks {owner:?} and must have no \
                 selector: its endpoints are published by the swh agent for probed pods only, \
                 and a selector would let the built-in controller publish unprobed pods; change \
                 spec.selector of the ServiceWithHealthchecks instead"
            ),
        });
    }
    let new_type = service_type(Some(new));
    if new_type == "ExternalName" && service_type(old) != "ExternalName" {
        errs.push(FieldError {
            path: "spec.type".into(),
            message: format!(
                "this Service belongs to ServiceWithHealthchecks {owner:?}; type ExternalName \
                 would drop its endpoints; change spec.type of the ServiceWithHealthchecks instead \
                 (ClusterIP, NodePort or LoadBalancer)"
            ),
        });
    }
    errs
}

/// `/validate-service`: UPDATE of a Service owned by an SWH.
pub async fn validate_service(body: &[u8], ctx: &Context) -> Reply {
    let review = match parse_review(body) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let req = &review.req;
    let resp = AdmissionResponse::from(req);
    let resp = if !matches!(req.operation, Operation::Update | Operation::Create) {
        resp
    } else if !req.kind.group.is_empty() || req.kind.kind != "Service" {
        resp.deny(format!(
            "this endpoint validates core/v1 Services only, got {}.{}; fix the webhook \
             configuration's rules",
            req.kind.kind, req.kind.group
        ))
    } else if req.user_info.username.as_deref() == Some(ctx.controller_username.as_str()) {
        resp
    } else {
        match &review.object {
            None => resp.deny("request.object is missing"),
            Some(new) => {
                let errs = child_service_problems(new, review.old_object.as_ref());
                if errs.is_empty() {
                    resp
                } else {
                    let r = deny_fields(resp, &format!("Service {}", object_label(req)), &errs);
                    info!(object = %object_label(req), user = ?req.user_info.username, reason = %r.result.message, "child Service change denied");
                    r
                }
            }
        }
    };
    Reply::review(resp)
}
