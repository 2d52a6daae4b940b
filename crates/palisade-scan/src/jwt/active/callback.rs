//! A listener that serves the scanner's own keys at the URLs it puts in `jku` and `x5u`, and
//! records which of them the target fetched.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::ScanError;

#[derive(Default)]
struct State {
    documents: HashMap<String, (&'static str, Vec<u8>)>,
    fetched: HashSet<String>,
}

pub(crate) struct Callback {
    base: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Callback {
    /// Listens on `bind`; the target reaches it at `public_base` when given (a target on
    /// another host cannot reach the scanner's loopback), else at the bound address.
    pub(crate) async fn start(
        bind: SocketAddr,
        public_base: Option<String>,
    ) -> Result<Self, ScanError> {
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|e| ScanError::Io(format!("callback listener on {bind}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ScanError::Io(format!("callback listener: {e}")))?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, shared.clone()));
            }
        });
        let base = public_base.unwrap_or_else(|| format!("http://{addr}"));
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            state,
            task,
        })
    }

    /// Serves `body` at `path` and returns its URL.
    pub(crate) fn serve(&self, path: &str, content_type: &'static str, body: Vec<u8>) -> String {
        self.lock()
            .documents
            .insert(path.to_owned(), (content_type, body));
        format!("{}{path}", self.base)
    }

    pub(crate) fn fetched(&self, path: &str) -> bool {
        self.lock().fetched.contains(path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP/1.x request: the path is recorded, the document (or 404) sent, the connection
/// closed.
async fn answer(mut stream: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();
    let document = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.fetched.insert(path.clone());
        state.documents.get(&path).cloned()
    };
    let response = match document {
        Some((content_type, body)) => {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            r
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}
