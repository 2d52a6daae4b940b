//! Starts every deliberately weak JWT verifier of the tests on loopback and prints one JSON
//! line per target (`flaw`, `url`, `token`), then serves until stdin closes: for comparing
//! scanners on the same targets (bench/jwt_scanners.sh).

#[path = "../tests/support/targets.rs"]
mod targets;

use std::io::Read;

#[tokio::main]
async fn main() {
    let mut running = Vec::new();
    for flaw in targets::ALL {
        let target = targets::WeakTarget::start(flaw).await;
        println!(
            "{}",
            serde_json::json!({ "flaw": format!("{flaw:?}"), "url": target.url, "token": target.token() })
        );
        running.push(target);
    }
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
}
