//! A scripted stand-in for a verifier, used only where a gateway behaviour
//! cannot be provoked through the real verifier: answers that carry
//! digests before any signing validator exists, a verifier that accepts a
//! call and never answers (deadline tests), and call counting for
//! de-duplication. It speaks the real gRPC contract and health protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use portcullis_proto::v1::verifier_server::{Verifier, VerifierServer};
use portcullis_proto::{VerifyRequest, VerifyResponse};
use tonic::{Request, Response, Status};

/// Decides the stub's answer to one request; `None` means never answer.
pub type Responder = Arc<dyn Fn(&VerifyRequest) -> Option<VerifyResponse> + Send + Sync>;

/// A running stub verifier.
pub struct StubVerifier {
    /// Its address.
    pub addr: SocketAddr,
    calls: Arc<Mutex<HashMap<String, usize>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Clone)]
struct Service {
    responder: Responder,
    calls: Arc<Mutex<HashMap<String, usize>>>,
    gate: Option<Arc<tokio::sync::Barrier>>,
}

#[tonic::async_trait]
impl Verifier for Service {
    async fn verify(
        &self,
        request: Request<VerifyRequest>,
    ) -> Result<Response<VerifyResponse>, Status> {
        let req = request.into_inner();
        *self
            .calls
            .lock()
            .expect("lock")
            .entry(req.image.clone())
            .or_default() += 1;
        if let Some(gate) = &self.gate {
            gate.wait().await;
        }
        match (self.responder)(&req) {
            Some(r) => Ok(Response::new(r)),
            None => {
                futures::future::pending::<()>().await;
                Err(Status::internal("unreachable"))
            }
        }
    }

    /// The stub grants no leases, so a gateway never reuses its answers:
    /// every request reaches it (call counting depends on that).
    async fn lease(
        &self,
        _request: Request<portcullis_proto::v1::LeaseRequest>,
    ) -> Result<Response<portcullis_proto::v1::LeaseResponse>, Status> {
        Err(Status::failed_precondition("the stub grants no leases"))
    }
}

impl StubVerifier {
    /// Starts the stub on a free port.
    pub async fn start(responder: Responder) -> Self {
        Self::start_gated(responder, None).await
    }

    /// Starts a stub whose calls each wait at `gate` before answering, so a
    /// test can require that calls are in flight together.
    pub async fn start_gated(
        responder: Responder,
        gate: Option<Arc<tokio::sync::Barrier>>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let calls = Arc::new(Mutex::new(HashMap::new()));
        let service = Service {
            responder,
            calls: calls.clone(),
            gate,
        };
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<VerifierServer<Service>>().await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(health_service)
                .add_service(VerifierServer::new(service))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = rx.await;
                    },
                )
                .await;
        });
        StubVerifier {
            addr,
            calls,
            shutdown: Some(tx),
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many Verify calls named `image`.
    pub fn calls(&self, image: &str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .get(image)
            .copied()
            .unwrap_or_default()
    }

    /// The total number of Verify calls.
    pub fn total_calls(&self) -> usize {
        self.calls.lock().expect("lock").values().sum()
    }
}

impl Drop for StubVerifier {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
