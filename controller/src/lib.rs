//! swh-controller.
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "swh-controller", version, about = "ServiceWithHealthchecks controller")]
pub struct Args {}
