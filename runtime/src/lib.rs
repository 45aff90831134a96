//! swh-runtime: what the swh binaries share at run time. Today the Kubernetes clients with
//! every API call bounded ([`client`]); the log flags, signal handling and admin router of
//! each binary are to move here too.

pub mod client;
