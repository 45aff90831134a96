//! Hand-written OpenAPI schema fragments for fields whose Rust type is shared with core/v1
//! (k8s-openapi types) but whose CRD schema needs more: enums, defaults, list-map keys, limits
//! and CEL rules.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{Schema, SchemaGenerator, json_schema};

/// Limit on `spec.ports` (keeps CEL cost bounded).
pub const MAX_PORTS: u32 = 128;

/// `spec.ports`: ServicePort list, list-map keyed by port+protocol like core/v1.
pub fn service_ports(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The list of ports exposed by this service (as in a Service).",
        "type": "array",
        "maxItems": MAX_PORTS,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["port", "protocol"],
        "items": {
            "type": "object",
            "required": ["port"],
            "properties": {
                "name": {
                    "description": "The name of this port (a DNS label). Required when there is more than one port; EndpointSlice ports carry the same name.",
                    "type": "string",
                    "maxLength": 63
                },
                "protocol": {
                    "description": "TCP, UDP or SCTP. Default TCP.",
                    "type": "string",
                    "enum": ["TCP", "UDP", "SCTP"],
                    "default": "TCP"
                },
                "appProtocol": {
                    "description": "The application protocol for this port.",
                    "type": "string",
                    "maxLength": 253
                },
                "port": {
                    "description": "The port exposed by this service.",
                    "type": "integer",
                    "format": "int32",
                    "minimum": 1,
                    "maximum": 65535
                },
                "targetPort": {
                    "description": "Number (1..65535) or name (IANA_SVC_NAME) of the port on the pods. Defaults to port.",
                    "x-kubernetes-int-or-string": true,
                    "maxLength": 15,
                    "x-kubernetes-validations": [{
                        "rule": "type(self) == string || (self >= 1 && self <= 65535)",
                        "message": "targetPort must be a number in 1..65535 or a port name (the Service would be invalid)"
                    }]
                },
                "nodePort": {
                    "description": "The port on each node for type NodePort or LoadBalancer. Usually allocated by the system.",
                    "type": "integer",
                    "format": "int32",
                    "minimum": 0,
                    "maximum": 65535
                }
            }
        }
    })
}

/// v1alpha1 `spec.ports`: as Deckhouse's schema (a list-map keyed by port+protocol, protocol
/// defaulting to TCP) and nothing more: names, ranges and protocols are checked by the webhook,
/// whose messages say why (the child Service would be invalid).
pub fn service_ports_alpha(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The list of ports that are exposed by this service (as in a Service).",
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["port", "protocol"],
        "items": {
            "type": "object",
            "required": ["port"],
            "properties": {
                "name": {
                    "description": "The name of this port (a DNS label). Required when there is more than one port; EndpointSlice ports carry the same name.",
                    "type": "string"
                },
                "protocol": {
                    "description": "TCP, UDP or SCTP. Default TCP.",
                    "type": "string",
                    "default": "TCP"
                },
                "appProtocol": {
                    "description": "The application protocol for this port.",
                    "type": "string"
                },
                "port": {
                    "description": "The port exposed by this service (1..65535).",
                    "type": "integer",
                    "format": "int32"
                },
                "targetPort": {
                    "description": "Number (1..65535) or name (IANA_SVC_NAME) of the port on the pods. Defaults to port.",
                    "x-kubernetes-int-or-string": true
                },
                "nodePort": {
                    "description": "The port on each node for type NodePort or LoadBalancer. Usually allocated by the system.",
                    "type": "integer",
                    "format": "int32"
                }
            }
        }
    })
}

/// `spec.selector`: string map, replaced as a whole.
pub fn selector(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Label selector of the pods to probe and publish. An empty or missing selector selects every pod in the namespace.",
        "type": "object",
        "additionalProperties": {"type": "string"},
        "x-kubernetes-map-type": "atomic"
    })
}

/// `spec.type`.
pub fn service_type(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "ClusterIP, NodePort or LoadBalancer. Default ClusterIP. ExternalName is rejected (a ServiceWithHealthchecks needs endpoints).",
        "type": "string",
        "enum": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
        "default": "ClusterIP"
    })
}

/// v1alpha1 `spec.type`: a string defaulting to ClusterIP (Deckhouse's schema has no enum; a
/// CEL rule on the spec says which values a Service can take).
pub fn service_type_alpha(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "ClusterIP, NodePort or LoadBalancer. Default ClusterIP. ExternalName is rejected (a ServiceWithHealthchecks needs endpoints).",
        "type": "string",
        "default": "ClusterIP"
    })
}

/// v1alpha1: an atomic list of strings without limits (as Deckhouse's schema).
pub fn string_list_alpha(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "atomic",
        "items": {"type": "string"}
    })
}

/// v1alpha1 `http.httpHeaders`: `{name, value}` pairs without limits (as Deckhouse's schema);
/// the webhook denies names and values no request can carry.
pub fn http_headers_alpha(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Extra request headers; duplicates are sent repeatedly.",
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name", "value"],
            "properties": {
                "name": {"description": "Header name.", "type": "string"},
                "value": {"description": "Header value.", "type": "string"}
            }
        }
    })
}

/// v1alpha1 probe `targetPort`: 1..65535 (Deckhouse's schema) or a container port name (an swh
/// extension; Deckhouse's newest schema takes numbers only).
pub fn probe_port_alpha(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Pod port to probe: a number in 1..65535 or the name of a container port.",
        "x-kubernetes-int-or-string": true,
        "maxLength": 15,
        "x-kubernetes-validations": [{
            "rule": "type(self) == string || (self >= 1 && self <= 65535)",
            "message": "targetPort must be a number in 1..65535 or a container port name (Deckhouse's schema rejects it too)"
        }]
    })
}

/// An atomic list of strings.
pub fn atomic_string_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 64,
        "x-kubernetes-list-type": "atomic",
        "items": {"type": "string", "maxLength": 64}
    })
}

/// An atomic list of at most two strings (clusterIPs).
pub fn atomic_string_list_2(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 2,
        "x-kubernetes-list-type": "atomic",
        "items": {"type": "string", "maxLength": 64}
    })
}

/// `spec.sessionAffinity`.
pub fn session_affinity(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "ClientIP or None.",
        "type": "string",
        "enum": ["ClientIP", "None"]
    })
}

/// `spec.externalTrafficPolicy` / `spec.internalTrafficPolicy`.
pub fn traffic_policy(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Cluster or Local.",
        "type": "string",
        "enum": ["Cluster", "Local"]
    })
}

/// `spec.ipFamilies`.
pub fn ip_families(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "IPv4 and/or IPv6.",
        "type": "array",
        "maxItems": 2,
        "x-kubernetes-list-type": "atomic",
        "items": {"type": "string", "enum": ["IPv4", "IPv6"]}
    })
}

/// `spec.ipFamilyPolicy`.
pub fn ip_family_policy(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "SingleStack, PreferDualStack or RequireDualStack.",
        "type": "string",
        "enum": ["SingleStack", "PreferDualStack", "RequireDualStack"]
    })
}

/// A probe port: 1..65535 or a container port name.
pub fn probe_port(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Pod port to probe: a number in 1..65535 or the name of a container port.",
        "x-kubernetes-int-or-string": true,
        "maxLength": 15,
        "x-kubernetes-validations": [{
            "rule": "type(self) == string || (self >= 1 && self <= 65535)",
            "message": "port must be a number in 1..65535 or a container port name"
        }]
    })
}

/// `status.conditions`: metav1.Condition list-map keyed by type.
pub fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Condition>();
    json_schema!({
        "description": "Conditions: Ready, ChildServiceReady, ChildServiceConflict, Adopted, FailOpen.",
        "type": "array",
        "maxItems": 32,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": item
    })
}
