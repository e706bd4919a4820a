//! Runtime control of the Python workers' telemetry: toggle, sampling by glob, allow/deny.
//!
//! The host holds one setting for all workers (the seeds' `Telemetry.Control`); every
//! worker's `StreamTelemetry` consumer follows it and forwards changes to Python at once,
//! so changes take effect without restarting workers. A worker started later gets the
//! current setting when its stream opens. While no handler wants any `snakepit.python.*`
//! event, Python is told to record nothing, so unobserved telemetry costs no call anything.

use tokio::sync::watch;

/// What Python records and streams.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonTelemetrySettings {
    /// Whether Python records events at all.
    pub enabled: bool,
    /// The share of matching events kept, 0.0 to 1.0.
    pub sampling_rate: f64,
    /// Globs of the event names sampling applies to (empty: all).
    pub sampling_patterns: Vec<String>,
    /// Globs of the event names allowed (empty: all).
    pub allow: Vec<String>,
    /// Globs of the event names dropped (wins over `allow`).
    pub deny: Vec<String>,
}

impl Default for PythonTelemetrySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            sampling_rate: 1.0,
            sampling_patterns: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

/// A sampling rate outside 0.0..=1.0.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("sampling rate {0} is out of range (use a number from 0.0 to 1.0)")]
pub struct InvalidSamplingRate(pub f64);

/// The user's settings and whether any handler wants Python events.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlState {
    /// What the host asked for.
    pub settings: PythonTelemetrySettings,
    /// Whether a handler is attached to any `snakepit.python.*` event.
    pub demand: bool,
}

impl ControlState {
    /// Returns what Python should apply: the settings, off while nobody listens.
    pub fn effective(&self) -> PythonTelemetrySettings {
        let mut s = self.settings.clone();
        s.enabled &= self.demand;
        s
    }
}

/// The host's handle on the Python workers' telemetry settings.
#[derive(Debug)]
pub struct PythonControl {
    tx: watch::Sender<ControlState>,
}

impl Default for PythonControl {
    fn default() -> Self {
        Self::new()
    }
}

impl PythonControl {
    /// Returns a control with the defaults (on, everything, no sampling).
    pub fn new() -> Self {
        Self {
            tx: watch::channel(ControlState {
                settings: PythonTelemetrySettings::default(),
                demand: false,
            })
            .0,
        }
    }

    /// Turns Python telemetry on or off.
    pub fn toggle(&self, enabled: bool) {
        self.tx.send_modify(|c| c.settings.enabled = enabled);
    }

    /// Keeps `rate` of the events matching `patterns` (all events when empty).
    pub fn set_sampling(&self, rate: f64, patterns: &[&str]) -> Result<(), InvalidSamplingRate> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(InvalidSamplingRate(rate));
        }
        self.tx.send_modify(|c| {
            c.settings.sampling_rate = rate;
            c.settings.sampling_patterns = patterns.iter().map(|p| (*p).to_owned()).collect();
        });
        Ok(())
    }

    /// Allows only the events matching `allow` (all when empty) and drops those matching `deny`.
    pub fn set_filter(&self, allow: &[&str], deny: &[&str]) {
        self.tx.send_modify(|c| {
            c.settings.allow = allow.iter().map(|p| (*p).to_owned()).collect();
            c.settings.deny = deny.iter().map(|p| (*p).to_owned()).collect();
        });
    }

    /// Restores the defaults.
    pub fn reset(&self) {
        self.tx
            .send_modify(|c| c.settings = PythonTelemetrySettings::default());
    }

    /// Returns the current settings (as asked for, whether or not a handler listens).
    pub fn settings(&self) -> PythonTelemetrySettings {
        self.tx.borrow().settings.clone()
    }

    /// Records whether any handler wants Python events (the bus calls it on attach/detach).
    pub(crate) fn set_demand(&self, demand: bool) {
        self.tx.send_if_modified(|c| {
            let changed = c.demand != demand;
            c.demand = demand;
            changed
        });
    }

    /// Follows the state (each worker's stream consumer holds one receiver and applies
    /// [`ControlState::effective`]).
    pub fn subscribe(&self) -> watch::Receiver<ControlState> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_reach_subscribers_and_bad_rates_are_refused() {
        let control = PythonControl::new();
        let mut rx = control.subscribe();
        control.set_sampling(0.25, &["python.*"]).unwrap();
        assert!(rx.has_changed().unwrap());
        let s = rx.borrow_and_update().settings.clone();
        assert_eq!(s.sampling_rate, 0.25);
        assert!(!rx.borrow().effective().enabled, "off while nobody listens");
        control.set_demand(true);
        assert!(rx.borrow().effective().enabled);
        assert_eq!(s.sampling_patterns, vec!["python.*".to_owned()]);
        assert_eq!(
            control.set_sampling(1.5, &[]),
            Err(InvalidSamplingRate(1.5))
        );
        control.set_filter(&[], &["python.noisy.*"]);
        control.toggle(false);
        let s = control.settings();
        assert!(!s.enabled);
        assert_eq!(s.deny, vec!["python.noisy.*".to_owned()]);
        control.reset();
        assert_eq!(control.settings(), PythonTelemetrySettings::default());
    }
}
