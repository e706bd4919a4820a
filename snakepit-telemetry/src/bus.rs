//! The in-process event bus: handlers attach by name or prefix, crates emit catalog events.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::catalog::{self, EventDef, CATALOG};
use crate::control::PythonControl;
use crate::event::{Event, Measurement};

type HandlerFn = dyn Fn(&Event<'_>) + Send + Sync;

/// Gives the W3C `traceparent` of a call by its correlation id.
pub type TraceContextFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Why a handler could not be attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// A handler with this id is attached already.
    #[error("a telemetry handler with id '{0}' is attached already (detach it first or pick another id)")]
    DuplicateId(String),
    /// The pattern names no catalog event.
    #[error("telemetry pattern '{0}' matches no catalog event (use a name such as 'snakepit.pool.worker.spawned' or a prefix such as 'snakepit.pool.*')")]
    NoMatch(String),
}

struct Attached {
    id: Arc<str>,
    /// One flag per catalog entry: whether this handler wants it.
    wants: Box<[bool]>,
    handler: Arc<HandlerFn>,
}

/// The event bus of a host; [`Telemetry::global`] is the one the snakepit crates emit to.
pub struct Telemetry {
    handlers: RwLock<Arc<Vec<Attached>>>,
    /// How many handlers want each catalog entry (the no-handler fast path reads only this).
    wanted: Box<[AtomicUsize]>,
    python: PythonControl,
    trace_context: OnceLock<TraceContextFn>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.handler_ids();
        f.debug_struct("Telemetry").field("handlers", &ids).finish()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Returns a bus with no handlers (tests and embedders may keep their own).
    pub fn new() -> Self {
        Self {
            handlers: RwLock::new(Arc::new(Vec::new())),
            wanted: CATALOG.iter().map(|_| AtomicUsize::new(0)).collect(),
            python: PythonControl::new(),
            trace_context: OnceLock::new(),
        }
    }

    /// Returns the host-wide bus that the snakepit crates emit to.
    pub fn global() -> &'static Telemetry {
        static GLOBAL: OnceLock<Telemetry> = OnceLock::new();
        GLOBAL.get_or_init(Telemetry::new)
    }

    /// Attaches `handler` to the events matching `pattern` (a name, `prefix.*`, or `*`).
    pub fn attach(
        &self,
        id: &str,
        pattern: &str,
        handler: impl Fn(&Event<'_>) + Send + Sync + 'static,
    ) -> Result<(), AttachError> {
        self.attach_many(id, &[pattern], handler)
    }

    /// Attaches one handler to every event matching any of `patterns` (the seeds' `attach_many`).
    pub fn attach_many(
        &self,
        id: &str,
        patterns: &[&str],
        handler: impl Fn(&Event<'_>) + Send + Sync + 'static,
    ) -> Result<(), AttachError> {
        let mut wants = vec![false; CATALOG.len()].into_boxed_slice();
        for pattern in patterns {
            let mut any = false;
            for def in catalog::matching(pattern) {
                wants[def.index] = true;
                any = true;
            }
            if !any {
                return Err(AttachError::NoMatch((*pattern).to_owned()));
            }
        }
        let mut guard = self.handlers.write().unwrap_or_else(|p| p.into_inner());
        if guard.iter().any(|a| &*a.id == id) {
            return Err(AttachError::DuplicateId(id.to_owned()));
        }
        for (i, w) in wants.iter().enumerate() {
            if *w {
                self.wanted[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut next: Vec<Attached> = guard.iter().map(Attached::share).collect();
        next.push(Attached {
            id: id.into(),
            wants,
            handler: Arc::new(handler),
        });
        *guard = Arc::new(next);
        self.python.set_demand(self.python_wanted());
        Ok(())
    }

    /// Detaches the handler with `id`; returns false when there was none.
    pub fn detach(&self, id: &str) -> bool {
        let mut guard = self.handlers.write().unwrap_or_else(|p| p.into_inner());
        let Some(pos) = guard.iter().position(|a| &*a.id == id) else {
            return false;
        };
        let mut next: Vec<Attached> = guard.iter().map(Attached::share).collect();
        let gone = next.remove(pos);
        for (i, w) in gone.wants.iter().enumerate() {
            if *w {
                self.wanted[i].fetch_sub(1, Ordering::Relaxed);
            }
        }
        *guard = Arc::new(next);
        self.python.set_demand(self.python_wanted());
        true
    }

    /// Whether any handler wants an event of the Python area.
    fn python_wanted(&self) -> bool {
        CATALOG
            .iter()
            .filter(|d| d.name.starts_with("snakepit.python."))
            .any(|d| self.wanted[d.index].load(Ordering::Relaxed) > 0)
    }

    /// Returns the ids of the attached handlers.
    pub fn handler_ids(&self) -> Vec<String> {
        self.snapshot().iter().map(|a| a.id.to_string()).collect()
    }

    /// Returns whether any handler wants `def` (emitters skip building costly metadata when not).
    #[inline]
    pub fn is_wanted(&self, def: &EventDef) -> bool {
        self.wanted
            .get(def.index)
            .is_some_and(|n| n.load(Ordering::Relaxed) > 0)
    }

    /// Emits one event to every handler that wants it.
    ///
    /// A handler that panics is detached (as the seeds' `:telemetry` does) and the others run.
    #[inline]
    pub fn emit(
        &self,
        def: &'static EventDef,
        measurements: &[(&str, Measurement)],
        metadata: &[(&str, &str)],
    ) {
        if !self.is_wanted(def) {
            return;
        }
        self.dispatch(&Event {
            def,
            measurements,
            metadata,
        });
    }

    /// Hands a prepared event to the handlers that want it.
    pub fn dispatch(&self, event: &Event<'_>) {
        let handlers = self.snapshot();
        let mut failed = Vec::new();
        for a in handlers.iter().filter(|a| a.wants[event.def.index]) {
            if catch_unwind(AssertUnwindSafe(|| (a.handler)(event))).is_err() {
                failed.push(a.id.clone());
            }
        }
        for id in failed {
            tracing::error!(target: "snakepit::telemetry", handler = %id, event = event.def.name, "telemetry handler panicked; detached");
            self.detach(&id);
        }
    }

    /// Returns the controls of the Python workers' telemetry (toggle, sampling, filter).
    pub fn python(&self) -> &PythonControl {
        &self.python
    }

    /// Installs the function that gives a call's W3C `traceparent` by correlation id (set by
    /// the OpenTelemetry handler; the first one installed stays).
    pub fn set_trace_context(&self, f: TraceContextFn) -> bool {
        self.trace_context.set(f).is_ok()
    }

    /// Returns the `traceparent` of the call with `correlation_id`, when tracing is on.
    pub fn traceparent(&self, correlation_id: &str) -> Option<String> {
        self.trace_context.get().and_then(|f| f(correlation_id))
    }

    fn snapshot(&self) -> Arc<Vec<Attached>> {
        self.handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Attached {
    fn share(&self) -> Self {
        Self {
            id: self.id.clone(),
            wants: self.wants.clone(),
            handler: self.handler.clone(),
        }
    }
}

/// Emits an event to the global bus (the one-line form the crates use).
#[inline]
pub fn emit(
    def: &'static EventDef,
    measurements: &[(&str, Measurement)],
    metadata: &[(&str, &str)],
) {
    Telemetry::global().emit(def, measurements, metadata);
}

#[cfg(test)]
mod tests;
