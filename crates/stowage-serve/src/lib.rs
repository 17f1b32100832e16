//! `stowage serve`: a read-only dashboard, JSON API and Prometheus `/metrics` over the last
//! completed scan.
//!
//! # Design
//! - [`AppState`] holds the last completed [`Snapshot`] behind an `RwLock<Arc<_>>`; a scan
//!   runs on a blocking thread through the [`Loader`] the caller supplies (the CLI scans the
//!   storage), and only a finished scan replaces the snapshot, so requests are always served
//!   from a complete one. Scans start at startup, every `interval`, and on
//!   `POST /api/v1/scan`; at most one runs at a time.
//! - [`router`] is the whole HTTP surface (tests drive it with `tower::ServiceExt::oneshot`).
//!   There is no route that serves blob contents, and none that changes anything: the only
//!   POST starts a read-only scan, and `POST /api/v1/notifications` (the registry's
//!   notification webhook, with `--history`) only writes pull data to the history database.
//! - Every error is JSON (`{"error": ..., "status": ...}`) with a 4xx/5xx status, including
//!   unknown routes, wrong methods and bad query strings.
//! - With a token ([`AppState::token`]), every request needs `Authorization: Bearer TOKEN` or
//!   the `stowage_token` cookie (set by visiting any page once with `?token=TOKEN`, so a
//!   browser can use the dashboard); otherwise 401. [`check_bind`] refuses a non-loopback
//!   address without a token unless explicitly told it is unprotected.
//!
//! ```no_run
//! # async fn f(state: std::sync::Arc<stowage_serve::AppState>) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! stowage_serve::serve(listener, state, std::time::Duration::from_secs(900)).await
//! # }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod api;
mod notify;
mod snapshot;
mod tables;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use api::{ApiDoc, router};
pub use notify::{
    BODY_LIMIT, ENVELOPE_TYPES, Notifications, NotifyAnswer, SECRET_HEADER, SKEW_SECS,
};
pub use snapshot::Snapshot;

/// Produces a fresh snapshot (scans the storage). Errors are shown to the user as text.
pub type Loader = Arc<dyn Fn() -> Result<Snapshot, String> + Send + Sync>;

/// Shared state of the dashboard.
pub struct AppState {
    current: RwLock<Option<Arc<Snapshot>>>,
    scanning: AtomicBool,
    generation: AtomicU64,
    scans_success: AtomicU64,
    scans_failure: AtomicU64,
    last_error: Mutex<Option<String>>,
    loader: Loader,
    /// The bearer token every request must carry, when set.
    pub token: Option<String>,
    /// The pull-data store for `POST /api/v1/notifications` and `GET /api/v1/usage`.
    pub notifications: Option<Arc<Notifications>>,
}

impl AppState {
    pub fn new(loader: Loader, token: Option<String>) -> Arc<AppState> {
        AppState::with_notifications(loader, token, None)
    }

    /// With the registry's notification webhook recorded into a history database.
    pub fn with_notifications(
        loader: Loader,
        token: Option<String>,
        notifications: Option<Notifications>,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            current: RwLock::new(None),
            scanning: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            scans_success: AtomicU64::new(0),
            scans_failure: AtomicU64::new(0),
            last_error: Mutex::new(None),
            loader,
            token,
            notifications: notifications.map(Arc::new),
        })
    }

    /// The last completed snapshot.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    pub fn scanning(&self) -> bool {
        self.scanning.load(Ordering::SeqCst)
    }

    /// Completed scans (the dashboard reloads when this changes).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Run the loader now on this thread (blocking) and install its result.
    pub fn scan_now(&self) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.loader)()))
            .unwrap_or_else(|_| Err("the scan panicked".into()));
        match result {
            Ok(s) => {
                if let Ok(mut c) = self.current.write() {
                    *c = Some(Arc::new(s));
                }
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
                self.scans_success.fetch_add(1, Ordering::SeqCst);
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            Err(msg) => {
                if let Ok(mut e) = self.last_error.lock() {
                    *e = Some(msg);
                }
                self.scans_failure.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.scanning.store(false, Ordering::SeqCst);
    }

    /// Start a scan in the background unless one is running. Returns whether it started.
    /// Needs a tokio runtime.
    pub fn trigger(self: &Arc<Self>) -> bool {
        if self.scanning.swap(true, Ordering::SeqCst) {
            return false;
        }
        let st = self.clone();
        tokio::task::spawn_blocking(move || st.scan_now());
        true
    }
}

/// Why the dashboard will not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(
        "{addr} is not a loopback address: anyone who can reach it could read the dashboard. Pass --token-file FILE to require a bearer token, or --unprotected-non-loopback if something else protects it"
    )]
    Unprotected { addr: String },
    #[error("cannot resolve {addr}: {reason}")]
    Resolve { addr: String, reason: String },
}

/// Resolve `--listen` and refuse a non-loopback address without protection.
pub fn check_bind(
    listen: &str,
    has_token: bool,
    unprotected: bool,
) -> Result<Vec<SocketAddr>, ServeError> {
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .map_err(|e| ServeError::Resolve {
            addr: listen.into(),
            reason: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(ServeError::Resolve {
            addr: listen.into(),
            reason: "no address".into(),
        });
    }
    if !has_token && !unprotected && addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err(ServeError::Unprotected {
            addr: listen.into(),
        });
    }
    Ok(addrs)
}

/// Serve until the process ends: first scan now, then every `interval`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    interval: Duration,
) -> std::io::Result<()> {
    state.trigger();
    let st = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate; the first scan already started
        loop {
            tick.tick().await;
            st.trigger();
        }
    });
    axum::serve(listener, router(state)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_allowed_without_token() {
        assert!(check_bind("127.0.0.1:0", false, false).is_ok());
        assert!(check_bind("[::1]:0", false, false).is_ok());
    }

    #[test]
    fn non_loopback_needs_a_token_or_the_explicit_flag() {
        let e = check_bind("0.0.0.0:8080", false, false).unwrap_err();
        assert!(matches!(e, ServeError::Unprotected { .. }), "{e}");
        assert!(e.to_string().contains("--token-file"));
        assert!(check_bind("0.0.0.0:8080", true, false).is_ok());
        assert!(check_bind("0.0.0.0:8080", false, true).is_ok());
        assert!(check_bind("192.0.2.1:80", false, false).is_err());
    }

    #[test]
    fn unresolvable_is_an_error() {
        assert!(check_bind("not an address", false, false).is_err());
    }
}
