//! Detects this machine's hardware and prints the table `snakepit hardware` shows (`--json` for JSON).

#[tokio::main]
async fn main() {
    let report = snakepit_hardware::detect().await;
    if std::env::args().any(|a| a == "--json") {
        match serde_json::to_string_pretty(&*report) {
            Ok(json) => println!("{json}"),
            Err(err) => eprintln!("could not render the report as JSON: {err}"),
        }
        return;
    }
    print!("{}", snakepit_hardware::render_table(&report));
    match report.select(snakepit_hardware::DevicePreference::Auto) {
        Ok(device) => println!("\nauto-selected device: {device}"),
        Err(err) => eprintln!("\n{err}"),
    }
}
