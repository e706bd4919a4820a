//! Identifiers: workers, sessions and host runs.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an existing identifier string.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// Returns the identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// Names one worker of a pool, such as `"default_worker_3"`.
    WorkerId
);
string_id!(
    /// Names a session: calls that share it prefer the worker that served it first.
    SessionId
);
string_id!(
    /// Names one run of the host: seven base-36 characters, five from the clock and two random.
    ///
    /// Every worker process of a run carries it on its command line, so leftovers of a crashed
    /// run can be recognised (together with their start time) and never confused with ours.
    RunId
);

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

impl WorkerId {
    /// Builds the id of the `index`-th worker (counting from 1) of the pool named `pool`.
    pub fn for_pool(pool: &str, index: usize) -> Self {
        Self(format!("{pool}_worker_{index}"))
    }
}

impl RunId {
    /// Generates a fresh run id: 5 base-36 characters of the clock (in centiseconds) and 2 random ones.
    pub fn generate() -> Self {
        let centis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() / 10)
            .unwrap_or(0);
        let mut n = (centis % 36u128.pow(5)) as usize;
        let mut out = [b'0'; 7];
        for slot in out[..5].iter_mut().rev() {
            *slot = BASE36[n % 36];
            n /= 36;
        }
        let mut rng = rand::thread_rng();
        for slot in &mut out[5..] {
            *slot = BASE36[rng.gen_range(0..36)];
        }
        Self(out.iter().map(|&b| b as char).collect())
    }

    /// Tells whether `s` has the shape of a run id (7 lowercase base-36 characters).
    pub fn is_well_formed(s: &str) -> bool {
        s.len() == 7
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_seven_base36_chars_and_differ() {
        let a = RunId::generate();
        assert!(RunId::is_well_formed(a.as_str()), "{a}");
        let distinct: std::collections::HashSet<_> = (0..50).map(|_| RunId::generate()).collect();
        assert!(distinct.len() > 1);
    }

    #[test]
    fn worker_ids_name_their_pool() {
        assert_eq!(
            WorkerId::for_pool("default", 3).as_str(),
            "default_worker_3"
        );
    }
}
