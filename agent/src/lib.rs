//! swh-agent.
use clap::Parser;

pub mod probe;
pub mod schedule;
pub mod threshold;

#[derive(Parser, Debug)]
#[command(name = "swh-agent", version, about = "ServiceWithHealthchecks agent")]
pub struct Args {}
