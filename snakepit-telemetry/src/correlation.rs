//! Correlation ids: one per call, sent to Python as `x-snakepit-correlation-id`.

use rand::Rng;

/// Returns a fresh correlation id (32 hex digits, like Python's `uuid4().hex`).
pub fn new_id() -> String {
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

/// Returns `id` when it is set and not empty, otherwise a fresh one (the seeds' `ensure`).
pub fn ensure(id: Option<&str>) -> String {
    match id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => new_id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_and_kept_when_given() {
        let a = new_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_id());
        assert_eq!(ensure(Some("abc")), "abc");
        assert_eq!(ensure(Some("")).len(), 32);
        assert_eq!(ensure(None).len(), 32);
    }
}
