use crate::resolver::{SwappableResolver, load_pair};
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The certificate and key files a deployment configured.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// What identifies a version of the files on disk, so that a timer tick with nothing changed
    /// does no work and a broken file is reported once, not on every tick. The contents, not
    /// the modification times: a replacement within one timestamp tick, or a file system with
    /// coarse times, must not hide a change.
    fn version(&self) -> Option<[u8; 32]> {
        let mut both = std::fs::read(&self.cert).ok()?;
        both.extend(std::fs::read(&self.key).ok()?);
        Some(palisade_crypto::sha256(&both))
    }
}

/// Burst of file events (an editor or a deploy tool writing the cert, then the key) settle for
/// this long before the pair is read, so a half-written pair is not reported as an error.
const SETTLE: Duration = Duration::from_millis(250);

/// Keeps the resolver in step with the files: on a file-system event in either file's directory
/// (renames included, which is how most tools replace certificates), on SIGHUP, and on a timer
/// as a fallback for file systems without notifications. A pair that fails to load or does not
/// match is refused with an error log and a metric; the previous certificate keeps serving.
pub async fn reload(
    files: CertFiles,
    resolver: Arc<SwappableResolver>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    // Held for the task's lifetime: dropping the watcher stops notifications.
    let _watcher = watch(&files, tx);
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    // Unknown at first: the files may have changed between the initial load and this task's
    // start, and a first look that finds the served pair costs one read and no swap.
    let mut seen = None;
    loop {
        let forced = tokio::select! {
            Some(()) = rx.recv() => {
                tokio::time::sleep(SETTLE).await;
                while rx.try_recv().is_ok() {}
                false
            }
            Some(()) = recv_signal(&mut hangup) => true,
            _ = ticker.tick() => false,
            _ = shutdown.cancelled() => return,
        };
        let version = files.version();
        if !forced && version == seen {
            continue;
        }
        seen = version;
        reload_once(&files, &resolver);
    }
}

async fn recv_signal(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

fn reload_once(files: &CertFiles, resolver: &SwappableResolver) {
    match load_pair(&files.cert, &files.key) {
        Ok(next) if next.fingerprint == resolver.current().fingerprint => {}
        Ok(next) => {
            tracing::info!(
                fingerprint = %next.fingerprint,
                not_after = next.not_after,
                "TLS certificate reloaded"
            );
            resolver.swap(next);
        }
        Err(e) => {
            resolver.metrics().reload_failures.inc();
            tracing::error!(
                error = %e,
                "TLS certificate reload refused; the previous certificate stays in service"
            );
        }
    }
}

fn watch(files: &CertFiles, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // A full channel already holds a pending wake-up; that is all we need.
            let _ = tx.try_send(());
        }
    })
    .map_err(
        |e| tracing::warn!(error = %e, "file watching unavailable; relying on SIGHUP and timer"),
    )
    .ok()?;
    for dir in [parent(&files.cert), parent(&files.key)] {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch certificate directory");
        }
    }
    Some(watcher)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
