//! kubectl swh: status and migrate.
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "kubectl swh", bin_name = "kubectl swh", version, about = "ServiceWithHealthchecks kubectl plugin")]
pub struct Args {}
