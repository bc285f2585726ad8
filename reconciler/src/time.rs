//! Deadlines that never overflow: any `Duration`, up to `Duration::MAX`,
//! is a valid setting, and "never" is a deadline far in the future
//! rather than a panic in `Instant + Duration`.

use std::time::Duration;

/// How far "never" is: thirty years, as tokio's own far future.
pub(crate) const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `from + d`, saturated at [`FAR`] from `from`.
pub(crate) fn deadline(from: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    from.checked_add(d.min(FAR))
        .unwrap_or_else(|| from + Duration::from_secs(86_400))
}

/// `from + d` on the standard clock, saturated like [`deadline`].
pub(crate) fn std_deadline(from: std::time::Instant, d: Duration) -> std::time::Instant {
    from.checked_add(d.min(FAR))
        .unwrap_or_else(|| from + Duration::from_secs(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_duration_is_a_deadline() {
        let now = std::time::Instant::now();
        assert!(std_deadline(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
        assert_eq!(
            std_deadline(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let now = tokio::time::Instant::now();
            assert!(deadline(now, Duration::MAX) > now + Duration::from_secs(86_400));
            assert_eq!(deadline(now, Duration::ZERO), now);
        });
    }
}
