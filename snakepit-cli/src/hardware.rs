//! `snakepit hardware`: the detected hardware as a table or JSON.

use clap::Args;

use crate::CliError;

/// Options of `snakepit hardware`.
#[derive(Args)]
pub(crate) struct HardwareArgs {
    /// Print the full report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: HardwareArgs) -> Result<(), CliError> {
    let report = snakepit_hardware::detect().await;
    if args.json {
        let text = serde_json::to_string_pretty(&*report)
            .map_err(|e| CliError::usage(format!("cannot serialise the hardware report: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", snakepit_hardware::render_table(&report));
    }
    Ok(())
}
