//! swh-agent: the per-node probe engine and EndpointSlice/status writer.
//!
//! - [`probe`], [`threshold`], [`schedule`]: the cluster-independent probe engine.
//! - [`targets`], [`index`], [`slices`]: pure mapping from watched objects to probe targets,
//!   EndpointSlices and status entries.
//! - [`run`]: watches, the engine task and the writers ([`slice_writer`], [`status_writer`],
//!   [`secrets`], [`events`]); [`admin`] and [`metrics`] for the admin port; [`client`]: the
//!   bounded request and watch clients.

pub mod admin;
pub mod args;
pub mod events;
pub mod index;
pub mod metrics;
pub mod probe;
pub mod run;
pub mod schedule;
pub mod secrets;
pub mod slice_writer;
pub mod slices;
pub mod status_writer;
pub mod targets;
pub mod threshold;

pub use args::Args;
