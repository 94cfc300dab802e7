//! The monitoring component (`deploy/kubernetes/components/monitoring`):
//! every metric its Grafana dashboard and its alert rules use exists in the
//! real binaries' `/metrics` output.

use std::collections::BTreeSet;

use portcullis_e2e::signer::workspace_root;
use portcullis_e2e::{Gateway, GatewayOptions, Verifier, free_port};

/// `portcullis_…` names used in `text`, as families (the `_total`,
/// `_bucket`, `_sum`, `_count` sample suffixes dropped).
fn used_families(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("portcullis_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &text[start..end];
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        // Alert and dashboard identifiers are not metrics.
        if !family.starts_with("portcullis_dashboard") {
            out.insert(family.to_string());
        }
        i = end;
    }
    out
}

/// Families a `/metrics` text declares (`# TYPE name kind`).
fn declared(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Families the binaries register (`r.register("name", …)` under the
/// `portcullis` prefix in their metrics modules).
fn registered() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in ["gateway/src/metrics.rs", "verifier/src/metrics.rs"] {
        let text = std::fs::read_to_string(workspace_root().join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("r.register(") {
            rest = &rest[at + "r.register(".len()..];
            let Some(open) = rest.find('"') else { break };
            let after = &rest[open + 1..];
            let Some(close) = after.find('"') else { break };
            out.insert(format!("portcullis_{}", &after[..close]));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_rules_use_exists() {
    use portcullis_e2e::{Review, pod_spec};
    let dir = workspace_root().join("deploy/kubernetes/components/monitoring");
    let mut used = BTreeSet::new();
    for file in ["portcullis-dashboard.json", "prometheusrules.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        used.extend(used_families(&text));
    }
    assert!(used.len() >= 10, "{used:?}");
    let registered = registered();
    let missing: Vec<&String> = used.iter().filter(|m| !registered.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "used but not registered: {missing:?}\nregistered: {registered:?}"
    );

    // And the real binaries export them under these names once they have
    // something to count: one admission through both.
    let metrics: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = "validators:\n  - {name: allow, type: static, approve: true}\npolicy:\n  - {pattern: \"**\", validator: allow}\n";
    let verifier = tokio::task::block_in_place(|| {
        Verifier::start(config, &["--metrics-listen", &metrics.to_string()])
    });
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    let review = Review::pod(pod_spec(&["nginx:1.27"], &[], &[]));
    let (status, _) = gw.post_json("/mutate", &review.json).await;
    assert_eq!(status, 200);
    let (_, gateway_text) = gw.get("/metrics").await;
    let verifier_text = verifier.metrics_text(metrics).await;
    let mut exported = declared(&gateway_text);
    exported.extend(declared(&verifier_text));
    for family in [
        "portcullis_admissions",
        "portcullis_admission_duration_seconds",
        "portcullis_image_verdicts",
        "portcullis_verifier_calls",
        "portcullis_verifications",
    ] {
        assert!(used.contains(family), "{family} is on the dashboard");
        assert!(exported.contains(family), "{family} exported: {exported:?}");
    }
    for family in &exported {
        assert!(
            registered.contains(family),
            "{family} exported but not found registered"
        );
    }
}
