//! Live reload of the mappings directory: read every `mappings_poll_ms` for a change, and at once
//! on SIGHUP.
//!
//! The files' content is compared (their digest), not file events watched: an editor's
//! save-by-rename, a Kubernetes ConfigMap's symlink swap and a network filesystem that sends no
//! events all look the same that way, and the directory is a few small files. A change is compiled
//! only once two reads in a row agree, so a save still being written is not tried; a set that was
//! refused is not tried again until it changes.
//!
//! Applying one is `App::reload` (`app.rs`): the compiled set (`Served`) is swapped whole, and
//! `server/route.rs` takes the set a request is served with, to its end; the mapping loader and
//! its diagnostics are `mapping/`.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;

/// Reads the mappings every `every` for as long as the process runs.
pub async fn watch(app: Arc<App>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = app.served().digest.clone();
    let mut refused: Option<String> = None;
    loop {
        ticks.tick().await;
        let digest = app.mappings_digest();
        let settled = digest == seen;
        seen = digest;
        if !settled || seen == app.served().digest || refused.as_ref() == Some(&seen) {
            continue;
        }
        if app.reload().await.is_err() {
            refused = Some(seen.clone());
        }
    }
}

/// Reloads on every SIGHUP, for as long as the process runs.
pub async fn on_sighup(app: Arc<App>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP; mappings reload by polling only");
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the mappings");
        if let Ok(None) = app.reload().await {
            tracing::info!("SIGHUP: the mappings have not changed");
        }
    }
}
