//! The brute-force guard of the REST APIs: authentication failures are counted per source
//! address, and an address that fails too often in a window is refused for a while, whatever
//! it sends (the door answers with its usual wrong-credentials status, so a guesser learns
//! nothing). Shared by every door that checks credentials; its totals feed the metrics.
//!
//! Invariant: the table is bounded ([`MAX_ADDRESSES`]); when full, tallies whose window
//! and block are over are dropped first, then the oldest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most addresses tracked at once.
pub const MAX_ADDRESSES: usize = 65_536;

/// One address's recent failures.
#[derive(Clone, Copy, Debug)]
struct Tally {
    /// Failures in the current window.
    failures: u32,
    /// When the window began.
    since: Instant,
    /// Refused until then, when blocked.
    blocked_until: Option<Instant>,
}

/// Counts authentication failures per source address and blocks the guessers (cheap to
/// clone).
#[derive(Clone)]
pub struct AuthGuard {
    inner: Arc<Inner>,
}

struct Inner {
    limit: u32,
    window: Duration,
    block: Duration,
    table: Mutex<HashMap<IpAddr, Tally>>,
    failures: AtomicU64,
    refused: AtomicU64,
}

/// What the guard says of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Check its credentials.
    Check,
    /// Refuse it without looking: its address is blocked.
    Blocked,
}

impl AuthGuard {
    /// A guard that blocks an address for `block` once it failed `limit` times within
    /// `window`; `limit` 0 turns it off.
    pub fn new(limit: u32, window: Duration, block: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit,
                window,
                block,
                table: Mutex::new(HashMap::new()),
                failures: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Tally>> {
        // Every critical section is a few map operations; a panic cannot leave it half-done.
        self.inner
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a request from `ip` at `now` may be checked.
    pub fn verdict(&self, ip: IpAddr, now: Instant) -> Verdict {
        if self.inner.limit == 0 {
            return Verdict::Check;
        }
        let blocked = self
            .table()
            .get(&ip)
            .and_then(|t| t.blocked_until)
            .is_some_and(|until| now < until);
        if blocked {
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            Verdict::Blocked
        } else {
            Verdict::Check
        }
    }

    /// `ip` failed to authenticate at `now`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        if self.inner.limit == 0 {
            return;
        }
        let (window, block, limit) = (self.inner.window, self.inner.block, self.inner.limit);
        let mut table = self.table();
        if table.len() >= MAX_ADDRESSES && !table.contains_key(&ip) {
            table.retain(|_, t| {
                now.duration_since(t.since) < window || t.blocked_until.is_some_and(|u| now < u)
            });
            if table.len() >= MAX_ADDRESSES
                && let Some(oldest) = table.iter().min_by_key(|(_, t)| t.since).map(|(k, _)| *k)
            {
                table.remove(&oldest);
            }
        }
        let tally = table.entry(ip).or_insert(Tally {
            failures: 0,
            since: now,
            blocked_until: None,
        });
        if now.duration_since(tally.since) >= window {
            tally.failures = 0;
            tally.since = now;
        }
        tally.failures = tally.failures.saturating_add(1);
        if tally.failures >= limit {
            tally.blocked_until = Some(now + block);
            tally.failures = 0;
            tally.since = now;
        }
    }

    /// `ip` authenticated: its failures are forgotten.
    pub fn succeeded(&self, ip: IpAddr) {
        if self.inner.limit == 0 {
            return;
        }
        let mut table = self.table();
        if table.get(&ip).is_some_and(|t| t.blocked_until.is_none()) {
            table.remove(&ip);
        }
    }

    /// Authentication failures since start.
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// Requests refused because their address was blocked, since start.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Addresses blocked now.
    pub fn blocked_now(&self, now: Instant) -> usize {
        self.table()
            .values()
            .filter(|t| t.blocked_until.is_some_and(|u| now < u))
            .count()
    }
}

impl AuthGuard {
    /// Checks a request's HTTP Basic credentials against `expected` (`user:password`
    /// bytes, compared in constant time) through the guard: a blocked address is refused
    /// unchecked, a failure counted, a success clears the address's failures.
    pub fn check_basic(&self, req: &axum::extract::Request, expected: &[u8]) -> bool {
        use base64::Engine;
        use subtle::ConstantTimeEq;
        let ip = source(req);
        let now = Instant::now();
        if self.verdict(ip, now) == Verdict::Blocked {
            return false;
        }
        let given = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, cred) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("basic").then_some(cred.trim())
            })
            .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok());
        let ok = given.is_some_and(|g| bool::from(g.ct_eq(expected)));
        if ok {
            self.succeeded(ip);
        } else {
            self.failed(ip, now);
        }
        ok
    }
}

/// The source address of a request served with connection info (the loopback address
/// when there is none, as in tests that call a router directly).
pub fn source(req: &axum::extract::Request) -> IpAddr {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), |c| c.0.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_for_the_block_time_only_that_address() {
        let g = AuthGuard::new(3, Duration::from_secs(60), Duration::from_secs(30));
        let a = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
        let t0 = Instant::now();
        g.failed(a, t0);
        g.failed(a, t0);
        assert_eq!(g.verdict(a, t0), Verdict::Check);
        g.failed(a, t0);
        assert_eq!(g.verdict(a, t0), Verdict::Blocked);
        assert_eq!(
            g.verdict(b, t0),
            Verdict::Check,
            "another address is not blocked"
        );
        // A success while blocked does not lift the block.
        g.succeeded(a);
        assert_eq!(g.verdict(a, t0 + Duration::from_secs(29)), Verdict::Blocked);
        assert_eq!(g.verdict(a, t0 + Duration::from_secs(30)), Verdict::Check);
        assert_eq!(g.failures(), 3);
        assert_eq!(g.refused(), 2);
        // Failures spread wider than the window never block.
        for i in 0..10 {
            g.failed(b, t0 + Duration::from_secs(61 * i));
        }
        assert_eq!(g.verdict(b, t0 + Duration::from_secs(610)), Verdict::Check);
        // Off: nothing is counted against anyone.
        let off = AuthGuard::new(0, Duration::from_secs(60), Duration::from_secs(30));
        for _ in 0..100 {
            off.failed(a, t0);
        }
        assert_eq!(off.verdict(a, t0), Verdict::Check);
    }

    #[test]
    fn the_table_stays_bounded() {
        let g = AuthGuard::new(5, Duration::from_secs(60), Duration::from_secs(30));
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 100) {
            g.failed(IpAddr::V4(std::net::Ipv4Addr::from(i)), t0);
        }
        assert!(g.table().len() <= MAX_ADDRESSES);
    }
}
