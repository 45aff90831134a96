//! swh-e2e: a real local Kubernetes control plane (etcd, kube-apiserver,
//! kube-controller-manager built from upstream), a pod network in a network namespace, backends
//! at pod IPs, and helpers for the end-to-end tests in `tests/`.

pub mod backend;
pub mod controlplane;
pub mod demo;
pub mod identity;
pub mod install;
pub mod nodes;
pub mod objects;
pub mod pki;
pub mod podnet;
pub mod process;
pub mod seeds;
pub mod slices;
pub mod stack;
pub mod testenv;
pub mod traffic;
pub mod webhook_install;
