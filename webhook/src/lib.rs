//! swh-webhook.
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "swh-webhook", version, about = "ServiceWithHealthchecks webhook")]
pub struct Args {}
