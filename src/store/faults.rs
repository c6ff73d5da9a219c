//! Storage fault injection: make the writer's commit, flush or fdatasync fail, or stop and wait, at chosen calls, so tests can prove what the store promises when the disk misbehaves.
//!
//! A [`FaultInjector`] is handed to [`SledStore::open_with_faults`](crate::store::SledStore::open_with_faults)
//! (or [`Ledger::open_with_faults`](crate::Ledger::open_with_faults)); the writer thread asks it
//! [`before`](FaultInjector::before) each of the three steps of a group commit. Production code
//! opens stores with [`FaultInjector::none`], which never fails and never waits, and nothing in
//! the crate reads an environment variable to arm one: a fault exists only if a caller built it.
//!
//! ```
//! use chargeledger::store::faults::{FaultInjector, FaultPoint};
//!
//! let faults = FaultInjector::new();
//! faults.fail_nth(FaultPoint::Fdatasync, 2); // the second fdatasync from now fails, once
//! assert!(faults.before(FaultPoint::Fdatasync).is_ok());
//! assert!(faults.before(FaultPoint::Fdatasync).is_err());
//! assert!(faults.before(FaultPoint::Fdatasync).is_ok());
//! assert_eq!(faults.injected(FaultPoint::Fdatasync), 1);
//! ```

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

/// A step of the writer's group commit where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// The sled transaction that stages the batch's writes (a failure applies nothing).
    Commit,
    /// sled's `flush()` of its IO buffers, after the transaction.
    Flush,
    /// The fdatasync of `<dir>/db` (and new blob files), after the flush.
    Fdatasync,
}

impl FaultPoint {
    const ALL: [FaultPoint; 3] = [FaultPoint::Commit, FaultPoint::Flush, FaultPoint::Fdatasync];

    fn index(self) -> usize {
        match self {
            FaultPoint::Commit => 0,
            FaultPoint::Flush => 1,
            FaultPoint::Fdatasync => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FaultPoint::Commit => "commit",
            FaultPoint::Flush => "flush",
            FaultPoint::Fdatasync => "fdatasync",
        }
    }
}

/// When a point fails.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// The call with this number (counting every call at the point since the injector was made).
    OnCall(u64),
    /// Every call from this number on.
    FromCall(u64),
}

#[derive(Default)]
struct PointState {
    calls: u64,
    injected: u64,
    failure: Option<Failure>,
    /// The gate and the number of the first call it holds.
    gate: Option<(u64, Arc<GateState>)>,
}

/// One gate: the first call that meets it announces itself and waits for the release.
struct GateState {
    released: Mutex<bool>,
    release_signal: Condvar,
    entered: watch::Sender<bool>,
}

impl GateState {
    fn release(&self) {
        *self
            .released
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = true;
        self.release_signal.notify_all();
    }
}

#[derive(Default)]
struct Points {
    points: [PointState; 3],
}

/// A handle that decides whether each commit, flush and fdatasync of a store fails or waits.
/// Cheap to clone: clones share their state, so a test keeps one and gives one to the store.
/// `Default` is [`FaultInjector::none`].
#[derive(Clone, Default)]
pub struct FaultInjector {
    state: Option<Arc<Mutex<Points>>>,
}

impl std::fmt::Debug for FaultInjector {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FaultInjector")
            .field("armed", &self.state.is_some())
            .finish()
    }
}

impl FaultInjector {
    /// An injector that never fails and never waits: what production stores use.
    pub fn none() -> Self {
        FaultInjector { state: None }
    }

    /// An injector with no faults armed yet; arm them with the methods below, at any time.
    pub fn new() -> Self {
        FaultInjector {
            state: Some(Arc::new(Mutex::new(Points::default()))),
        }
    }

    fn points(&self) -> Option<MutexGuard<'_, Points>> {
        // A test that panicked while holding the lock must not hide the faults from others.
        self.state
            .as_ref()
            .map(|state| state.lock().unwrap_or_else(|poison| poison.into_inner()))
    }

    /// The `nth` call at `point` from now (1: the next one) fails, once; later calls succeed.
    /// Replaces any failure armed before at that point. Does nothing on [`FaultInjector::none`].
    pub fn fail_nth(&self, point: FaultPoint, nth: u64) {
        if let Some(mut points) = self.points() {
            let state = &mut points.points[point.index()];
            state.failure = Some(Failure::OnCall(state.calls + nth.max(1)));
        }
    }

    /// The call at `point` with this number fails, once. Calls are numbered from 1 since the
    /// injector was made; the writer makes one commit, then one flush, then one fdatasync per
    /// batch, in order, so the sync of the batch whose commit is call `n` is fdatasync call `n`
    /// (as long as no batch failed before it). This lets a test aim at its own batch even
    /// while an earlier batch is still being synced.
    pub fn fail_call(&self, point: FaultPoint, call: u64) {
        if let Some(mut points) = self.points() {
            points.points[point.index()].failure = Some(Failure::OnCall(call));
        }
    }

    /// Every call at `point` from now on fails, until [`heal`](FaultInjector::heal).
    pub fn fail_from_now(&self, point: FaultPoint) {
        if let Some(mut points) = self.points() {
            let state = &mut points.points[point.index()];
            state.failure = Some(Failure::FromCall(state.calls + 1));
        }
    }

    /// Disarm the failure at `point` (a closed gate stays closed until released).
    pub fn heal(&self, point: FaultPoint) {
        if let Some(mut points) = self.points() {
            points.points[point.index()].failure = None;
        }
    }

    /// Close a gate at `point`: the next call there announces itself through
    /// [`Gate::entered`] and then waits, on the writer thread, until [`Gate::release`] (or the
    /// gate is dropped). Only that one call waits; an armed failure is decided after the gate,
    /// so a test can hold a commit at the point and then let it fail.
    ///
    /// # Panics
    /// On [`FaultInjector::none`], which has no state to hold a gate.
    pub fn close_gate(&self, point: FaultPoint) -> Gate {
        let next = self.calls(point) + 1;
        self.close_gate_at(point, next)
    }

    /// Close a gate that holds the call at `point` with this number (see
    /// [`fail_call`](FaultInjector::fail_call) for the numbering), or the first call after it
    /// if that one has already gone by; earlier calls pass.
    ///
    /// # Panics
    /// On [`FaultInjector::none`].
    pub fn close_gate_at(&self, point: FaultPoint, call: u64) -> Gate {
        let mut points = self
            .points()
            .expect("FaultInjector::none() cannot hold gates; use FaultInjector::new()");
        let (entered, entered_receiver) = watch::channel(false);
        let gate = Arc::new(GateState {
            released: Mutex::new(false),
            release_signal: Condvar::new(),
            entered,
        });
        if let Some((_, previous)) = points.points[point.index()]
            .gate
            .replace((call, gate.clone()))
        {
            previous.release();
        }
        Gate {
            point,
            state: gate,
            entered: entered_receiver,
        }
    }

    /// How many calls reached `point` (including failed and gated ones).
    pub fn calls(&self, point: FaultPoint) -> u64 {
        self.points()
            .map_or(0, |points| points.points[point.index()].calls)
    }

    /// How many calls at `point` were made to fail.
    pub fn injected(&self, point: FaultPoint) -> u64 {
        self.points()
            .map_or(0, |points| points.points[point.index()].injected)
    }

    /// Called by the store's writer right before `point`: waits at a closed gate, then returns
    /// the injected error if this call is to fail.
    pub fn before(&self, point: FaultPoint) -> io::Result<()> {
        let Some(mut points) = self.points() else {
            return Ok(());
        };
        let state = &mut points.points[point.index()];
        state.calls += 1;
        let call = state.calls;
        let gate = match state.gate.take() {
            Some((first_held, gate)) if call >= first_held => Some(gate),
            not_yet => {
                state.gate = not_yet;
                None
            }
        };
        let fails = match state.failure {
            Some(Failure::OnCall(nth)) => call == nth,
            Some(Failure::FromCall(first)) => call >= first,
            None => false,
        };
        if fails {
            state.injected += 1;
        }
        // Never wait while holding the lock: the test needs it to release the gate.
        drop(points);
        if let Some(gate) = gate {
            gate.entered.send_replace(true);
            let mut released = gate
                .released
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            while !*released {
                released = gate
                    .release_signal
                    .wait(released)
                    .unwrap_or_else(|poison| poison.into_inner());
            }
        }
        if fails {
            return Err(io::Error::other(format!(
                "injected {} failure (call {call})",
                point.name()
            )));
        }
        Ok(())
    }

    /// Calls seen at every point, for a test's summary line: `commit=…, flush=…, fdatasync=…`.
    pub fn summary(&self) -> String {
        FaultPoint::ALL
            .iter()
            .map(|point| {
                format!(
                    "{}: {} calls, {} failed",
                    point.name(),
                    self.calls(*point),
                    self.injected(*point)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A closed gate at one fault point. Dropping it releases the gate, so a failing test never
/// leaves the writer thread waiting forever.
pub struct Gate {
    point: FaultPoint,
    state: Arc<GateState>,
    entered: watch::Receiver<bool>,
}

impl Gate {
    /// The point this gate holds.
    pub fn point(&self) -> FaultPoint {
        self.point
    }

    /// Wait until a call has reached the gate; `false` if none did within `timeout`.
    pub async fn entered(&mut self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.entered.wait_for(|entered| *entered)).await,
            Ok(Ok(_))
        )
    }

    /// Whether a call is waiting at (or has passed) the gate, without waiting.
    pub fn has_been_entered(&self) -> bool {
        *self.entered.borrow()
    }

    /// Let the waiting call (and any later one) through.
    pub fn release(&self) {
        self.state.release();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.state.release();
    }
}
