//! The daemon's HTTP server: HTTP/1 over hyper with the limits a port that anyone on the
//! network can reach needs. A client that never finishes its request head is cut off after
//! the header timeout (hyper's timer starts when the connection waits for a request, so
//! an idle keep-alive connection is cut off the same way); at most `max_connections`
//! connections are served at once, the rest wait in the kernel's listen backlog instead of
//! taking file descriptors; and a stop does not wait for slow clients.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::config::HttpSettings;

/// How long requests in flight may take to finish once the server stops; connections
/// still open after that are dropped.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// How long the server waits after `accept` fails (out of file descriptors, say) before
/// it accepts again, so that a persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

/// Serves `app` on `listener` until `stop` turns true (or its sender is dropped), then
/// gives requests in flight [`STOP_GRACE`] and drops every connection.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &HttpSettings,
    mut stop: watch::Receiver<bool>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        // A slot first, then `accept`: a connection over the limit stays in the backlog,
        // where it costs the process nothing, until a served one closes.
        let slot = tokio::select! {
            () = stopped(&mut stop) => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "Cannot accept a connection; trying again shortly.");
                tokio::select! {
                    () = stopped(&mut stop) => break,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let mut stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut connection = pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopped(&mut stop) => {
                    // Lets a request in flight finish and closes the connection after it;
                    // an idle one closes at once.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                // Timeouts and resets are what hostile or broken clients cause: not an
                // operator's problem, and not worth a line each at the default level.
                debug!(%peer, error = %e, "HTTP connection ended with an error.");
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        debug!(
            connections = connections.len(),
            "Dropping HTTP connections still open after the grace period."
        );
    }
    connections.shutdown().await;
}

/// Completes when `stop` turns true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
