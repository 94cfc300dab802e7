//! A tiny authoritative DNS server on UDP 127.0.0.1 that answers A queries
//! for one name with a list of addresses the test can change (TTL 0). It
//! stands in for the cluster DNS behind a headless Service.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// A running test DNS server.
pub struct TestDns {
    /// Its address.
    pub addr: SocketAddr,
    answers: Arc<Mutex<Vec<Ipv4Addr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestDns {
    /// Starts serving `name` → `answers`.
    pub async fn start(name: &str, answers: Vec<Ipv4Addr>) -> Self {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind dns");
        let addr = socket.local_addr().expect("addr");
        let answers = Arc::new(Mutex::new(answers));
        let shared = answers.clone();
        let wanted = name.trim_end_matches('.').to_ascii_lowercase();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let ips = shared.lock().expect("lock").clone();
                if let Some(reply) = answer(&buf[..n], &wanted, &ips) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        TestDns {
            addr,
            answers,
            task,
        }
    }

    /// Replaces the answer.
    pub fn set(&self, answers: Vec<Ipv4Addr>) {
        *self.answers.lock().expect("lock") = answers;
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Builds the reply to one query (A for `wanted` → `ips`; anything else:
/// an empty NOERROR answer).
fn answer(query: &[u8], wanted: &str, ips: &[Ipv4Addr]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // Question: labels, then QTYPE and QCLASS.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let question_end = i + 4;
    let name = labels.join(".");
    let matched: &[Ipv4Addr] = if qtype == 1 && name == wanted {
        ips
    } else {
        &[]
    };
    let mut out = Vec::with_capacity(question_end + matched.len() * 16);
    out.extend_from_slice(&query[..2]); // id
    out.extend_from_slice(&[0x84, 0x00]); // QR, AA, NOERROR
    out.extend_from_slice(&[0, 1]); // QDCOUNT
    out.extend_from_slice(&(matched.len() as u16).to_be_bytes()); // ANCOUNT
    out.extend_from_slice(&[0, 0, 0, 0]); // NSCOUNT, ARCOUNT
    out.extend_from_slice(query.get(12..question_end)?);
    for ip in matched {
        out.extend_from_slice(&[0xc0, 0x0c]); // name: pointer to the question
        out.extend_from_slice(&[0, 1, 0, 1]); // A, IN
        out.extend_from_slice(&[0, 0, 0, 0]); // TTL 0
        out.extend_from_slice(&[0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}
