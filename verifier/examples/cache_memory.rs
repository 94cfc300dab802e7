//! Measures the verifier's resident memory with N cached verdicts in L1
//! (default 100,000), as the verdict cache holds them in production.
//!
//!     cargo run --release -p portcullis-verifier --example cache_memory [N]

use std::time::Duration;

use portcullis_proto::Reason;
use portcullis_verifier::{CachedVerdict, Caches, verdict_key};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let caches = Caches::local();
    let before = rss_kib();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    for i in 0..n {
        let digest = format!("sha256:{:064x}", i);
        let key = verdict_key(&[1u8; 32], &digest);
        caches
            .verdicts
            .get_or_compute::<(), _, _>(&key, deadline, || async {
                Ok((
                    CachedVerdict {
                        warnings: Vec::new(),
                        allowed: true,
                        digest: Some(digest.clone()),
                        reason: Reason::Verified as i32,
                        detail: String::new(),
                        message: "signed by alice, bob".to_string(),
                        valid_until: None,
                    },
                    Duration::from_secs(3600),
                ))
            })
            .await
            .expect("insert");
    }
    caches.verdicts.run_pending_tasks().await;
    let after = rss_kib();
    println!(
        "{n} cached verdicts: RSS {:.1} MiB before, {:.1} MiB after ({:.0} bytes per entry)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before) as f64 * 1024.0) / n as f64
    );
}
