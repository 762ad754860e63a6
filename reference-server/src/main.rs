//! `reference-server`: serves the booking API (see `docs/http/` in the repository) until SIGTERM or Ctrl-C.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use reference_server::{Application, Config};

#[tokio::main]
async fn main() -> ExitCode {
    reference_server::init_tracing();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reference-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = match Application::build(config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("reference-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    if app.admin_token_generated() {
        println!("admin token (generated, shown once): {}", app.admin_token());
    }
    tracing::info!(addr = %app.local_addr(), "listening");
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reference-server: {e}");
            ExitCode::FAILURE
        }
    }
}
