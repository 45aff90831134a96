//! swh-agent.
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "swh-agent", version, about = "ServiceWithHealthchecks agent")]
pub struct Args {}
