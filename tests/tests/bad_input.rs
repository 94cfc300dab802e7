//! Bad input gets a clear 4xx answer, never a panic or a 5xx.

use portcullis_e2e::{Gateway, GatewayOptions, Verifier};

const POLICY: &str = include_str!("../data/static-policy.yaml");

async fn stack() -> (Verifier, Gateway) {
    let verifier = Verifier::start(POLICY, &[]);
    let gateway = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        args: vec!["--max-body-bytes".into(), "65536".into()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    (verifier, gateway)
}

async fn raw(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = gw
        .client
        .request(method, format!("{}{path}", gw.url()))
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn bad_requests() {
    let (_v, mut gw) = stack().await;
    let json = Some("application/json");

    let (s, _) = raw(&gw, reqwest::Method::GET, "/mutate", None, vec![]).await;
    assert_eq!(s, 405);
    let (s, _) = raw(&gw, reqwest::Method::PUT, "/validate", json, b"{}".to_vec()).await;
    assert_eq!(s, 405);

    let (s, m) = raw(
        &gw,
        reqwest::Method::POST,
        "/mutate",
        Some("text/plain"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (s, m.trim()),
        (415, "content type must be application/json")
    );
    let (s, _) = raw(&gw, reqwest::Method::POST, "/mutate", None, b"{}".to_vec()).await;
    assert_eq!(s, 415);
    let (s, _) = raw(
        &gw,
        reqwest::Method::POST,
        "/mutate",
        Some("application/json; charset=utf-8"),
        b"{".to_vec(),
    )
    .await;
    assert_eq!(s, 400, "parameters on the content type are fine");

    let (s, m) = raw(
        &gw,
        reqwest::Method::POST,
        "/mutate",
        json,
        vec![b' '; 70_000],
    )
    .await;
    assert_eq!(
        (s, m.trim()),
        (413, "request body exceeds the limit of 65536 bytes")
    );

    let (s, m) = raw(
        &gw,
        reqwest::Method::POST,
        "/mutate",
        json,
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(m.starts_with("malformed AdmissionReview: "), "{m}");

    let (s, m) = raw(
        &gw,
        reqwest::Method::POST,
        "/mutate",
        json,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
    )
    .await;
    assert_eq!(
        (s, m.trim()),
        (400, "malformed AdmissionReview: it has no `request`")
    );

    let (s, m) = raw(
        &gw,
        reqwest::Method::POST,
        "/validate",
        json,
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"}}}"#.to_vec(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        m.contains("expected admission.k8s.io/v1/AdmissionReview"),
        "{m}"
    );

    let (s, _) = raw(&gw, reqwest::Method::POST, "/nope", json, b"{}".to_vec()).await;
    assert_eq!(s, 404);

    // Still alive and serving after all of that.
    gw.process.assert_running();
    assert_eq!(gw.get("/healthz").await.0, 200);
}

/// A client that sends its headers and then trickles (here: stalls) its
/// body gets 408 once the admission deadline has passed, instead of
/// holding a handler forever; the gateway keeps answering others.
#[tokio::test]
async fn a_stalled_body_gets_408() {
    let verifier = Verifier::start(POLICY, &[]);
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        args: vec!["--deadline-ms".into(), "300".into()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    // One chunk of JSON, then nothing: the stream never ends.
    let stalled = futures::StreamExt::chain(
        futures::stream::once(async { Ok::<_, std::io::Error>(b"{\"apiVersion\":".to_vec()) }),
        futures::stream::pending(),
    );
    let started = std::time::Instant::now();
    let response = gw
        .client
        .post(format!("{}/mutate", gw.url()))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stalled))
        .send()
        .await
        .expect("an answer while the body is still open");
    assert_eq!(response.status().as_u16(), 408);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "answered after {:?}",
        started.elapsed()
    );
    let text = response.text().await.unwrap_or_default();
    assert_eq!(text.trim(), "the request body did not arrive within 300 ms");
    let (s, _) = gw.get("/healthz").await;
    assert_eq!(s, 200);
}

/// A review naming tens of thousands of distinct images (a hostile
/// request, well under the body limit) is answered at once with one bounded
/// TOO_MANY_IMAGES denial: the images are counted in linear time before
/// anything else, and the message does not grow with the review. The old
/// quadratic de-duplication spent seconds of gateway CPU on it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_naming_thousands_of_images_is_denied_at_once() {
    let verifier = Verifier::start(POLICY, &[]);
    let gw = Gateway::start(GatewayOptions {
        verifiers: vec![verifier.url()],
        args: vec!["--deadline-ms".into(), "3000".into()],
        wait_ready: true,
        ..Default::default()
    })
    .await;
    let images: Vec<String> = (0..60_000).map(|i| format!("i{i}:1")).collect();
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    let review = portcullis_e2e::Review::pod(portcullis_e2e::pod_spec(&refs, &[], &[]));
    let started = std::time::Instant::now();
    let (status, body) = gw.post_json("/mutate", &review.json).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(!portcullis_e2e::review::allowed(&body));
    let message = portcullis_e2e::review::message(&body);
    assert_eq!(
        message.lines().count(),
        65,
        "64 images allowed, one past it"
    );
    assert!(
        message.starts_with(
            "i0:1: TOO_MANY_IMAGES: the object names 60000 distinct images; at most 64"
        ),
        "{}",
        &message[..200.min(message.len())]
    );
    // Well within the admission deadline.
    assert!(elapsed < std::time::Duration::from_secs(3), "{elapsed:?}");
}
