//! Events as handlers see them: a catalog entry, numeric measurements and string metadata.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::catalog::EventDef;

/// A measurement value: an integer (counts, nanoseconds) or a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measurement {
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
}

impl Measurement {
    /// Returns the value as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Self::Int(i) => i as f64,
            Self::Float(f) => f,
        }
    }

    /// Returns the value as an integer (floats are truncated).
    pub fn as_i64(self) -> i64 {
        match self {
            Self::Int(i) => i,
            Self::Float(f) => f as i64,
        }
    }
}

macro_rules! int_measurement {
    ($($t:ty),*) => {$(
        impl From<$t> for Measurement {
            fn from(v: $t) -> Self {
                Self::Int(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_measurement!(i64, u64, usize, u32, i32, u128);

impl From<f64> for Measurement {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

impl From<Duration> for Measurement {
    /// A duration becomes integer nanoseconds (the seeds' native unit).
    fn from(d: Duration) -> Self {
        Self::from(d.as_nanos())
    }
}

/// One emitted event, borrowed for the duration of the handler calls.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// Which catalog entry this is.
    pub def: &'static EventDef,
    /// Measurements by key.
    pub measurements: &'a [(&'a str, Measurement)],
    /// Metadata by key.
    pub metadata: &'a [(&'a str, &'a str)],
}

impl<'a> Event<'a> {
    /// Returns the event's dotted name.
    pub fn name(&self) -> &'static str {
        self.def.name
    }

    /// Returns the measurement named `key`.
    pub fn measurement(&self, key: &str) -> Option<Measurement> {
        self.measurements
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    /// Returns the metadata value named `key`.
    pub fn meta(&self, key: &str) -> Option<&'a str> {
        self.metadata
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    /// Copies the event into an owned form (for collectors and tests).
    pub fn to_owned_event(&self) -> OwnedEvent {
        OwnedEvent {
            name: self.def.name,
            measurements: self
                .measurements
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            metadata: self
                .metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

/// An event copied out of a handler.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedEvent {
    /// The dotted catalog name.
    pub name: &'static str,
    /// Measurements by key.
    pub measurements: BTreeMap<String, Measurement>,
    /// Metadata by key.
    pub metadata: BTreeMap<String, String>,
}

impl OwnedEvent {
    /// Returns the metadata value named `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// Returns the measurement named `key`.
    pub fn measurement(&self, key: &str) -> Option<Measurement> {
        self.measurements.get(key).copied()
    }
}
