//! Running the gRPC server: the Verifier service plus grpc.health.v1.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_proto::v1::verifier_server::VerifierServer;
use tonic::transport::Server;

use crate::decision::SharedEngine;
use crate::service::VerifierService;

/// How long a stopping verifier waits for open calls and streams (a
/// gateway's health watch never ends by itself) before it exits anyway.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, over TLS when `tls` is given. On
/// shutdown the health status turns NOT_SERVING first (gateways watching
/// it stop calling and close their watches), then open calls drain for at
/// most [`DRAIN_LIMIT`].
pub async fn serve(
    listen: SocketAddr,
    engine: SharedEngine,
    leases: Arc<crate::lease::Leases>,
    default_deadline: Duration,
    tls: Option<crate::tls::Reloading>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<VerifierServer<VerifierService>>()
        .await;
    let service = VerifierServer::new(VerifierService::new(engine, leases, default_deadline));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "verifier listening");
    let router = Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(service);
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        health_reporter
            .set_not_serving::<VerifierServer<VerifierService>>()
            .await;
        let _ = stopping_tx.send(true);
    };
    let overdue = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(DRAIN_LIMIT).await;
    };
    let served = async {
        match tls {
            None => {
                router
                    .serve_with_incoming_shutdown(plain_incoming(listener), signal)
                    .await
            }
            Some(tls) => {
                router
                    .serve_with_incoming_shutdown(tls_incoming(listener, tls), signal)
                    .await
            }
        }
    };
    tokio::select! {
        served = served => served?,
        () = overdue => {
            tracing::warn!(limit_secs = DRAIN_LIMIT.as_secs(), "calls or streams still open after the drain limit; stopping anyway");
        }
    }
    Ok(())
}

fn plain_incoming(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let next = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((next, listener))
    })
}

/// Accepts connections and runs each TLS handshake in its own task, so a
/// slow or failing client never holds up the others. Failed handshakes (a
/// client without an acceptable certificate) are logged and dropped.
fn tls_incoming(
    listener: tokio::net::TcpListener,
    tls: crate::tls::Reloading,
) -> impl futures::Stream<Item = std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>>
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        let _ = tx.send(Ok(tls_stream)).await;
                    }
                    Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Serves `GET /metrics` (Prometheus text) on `addr`, in the background.
pub(crate) async fn serve_metrics(
    addr: SocketAddr,
    registry: Arc<prometheus_client::registry::Registry>,
) -> Result<(), std::io::Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let registry = registry.clone();
                async move {
                    let mut out = String::new();
                    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        out,
                    )
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}
