//! Sessions workers open on the host bridge (`InitializeSession`, `GetSession`, `CleanupSession`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One session as the host bridge knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSession {
    /// The metadata the first `InitializeSession` carried.
    pub metadata: HashMap<String, String>,
    /// When it was first initialized.
    pub created_at: SystemTime,
}

/// The sessions of one host bridge; cheap to clone, shared by its listeners.
#[derive(Debug, Clone, Default)]
pub struct HostSessions {
    inner: Arc<Mutex<HashMap<String, HostSession>>>,
}

impl HostSessions {
    /// Records `id` unless it exists (initialization is idempotent: the original server
    /// initializes the session before every call). Returns whether it was new.
    pub fn initialize(&self, id: &str, metadata: HashMap<String, String>) -> bool {
        let Ok(mut map) = self.inner.lock() else {
            return false;
        };
        if map.contains_key(id) {
            return false;
        }
        map.insert(
            id.to_owned(),
            HostSession {
                metadata,
                created_at: SystemTime::now(),
            },
        );
        true
    }

    /// Returns the session `id`, if initialized and not cleaned up.
    pub fn get(&self, id: &str) -> Option<HostSession> {
        self.inner.lock().ok()?.get(id).cloned()
    }

    /// Removes the session; returns whether it existed.
    pub fn cleanup(&self, id: &str) -> bool {
        self.inner
            .lock()
            .map(|mut m| m.remove(id).is_some())
            .unwrap_or(false)
    }

    /// Number of open sessions.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialization_is_idempotent_and_cleanup_forgets() {
        let s = HostSessions::default();
        let meta: HashMap<String, String> = [("k".to_string(), "v".to_string())].into();
        assert!(s.initialize("a", meta.clone()));
        assert!(!s.initialize("a", HashMap::new()));
        assert_eq!(s.get("a").unwrap().metadata, meta);
        assert_eq!(s.len(), 1);
        assert!(s.cleanup("a"));
        assert!(!s.cleanup("a"));
        assert!(s.get("a").is_none());
        assert!(s.is_empty());
    }
}
