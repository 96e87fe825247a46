//! What the engine takes from where it runs: the wall clock and secure
//! random bytes. Natively they come from the standard library and the OS.
//! The component glue installs the host's two WASI imports instead, so the
//! component imports nothing else from WASI (see `wit/world.wit`).

use std::sync::OnceLock;

/// The sources the component glue installs before its first call.
pub struct Ambient {
    /// Seconds and nanoseconds since the Unix epoch.
    pub now: fn() -> (u64, u32),
    /// Fills the buffer with cryptographically secure random bytes.
    pub fill_random: fn(&mut [u8]),
}

static AMBIENT: OnceLock<Ambient> = OnceLock::new();

/// Installs the sources; later calls keep the first.
pub fn install(ambient: Ambient) {
    let _ = AMBIENT.set(ambient);
}

/// The current time, UTC.
pub fn now() -> time::OffsetDateTime {
    match AMBIENT.get() {
        Some(a) => {
            let (secs, nanos) = (a.now)();
            let at = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
            time::OffsetDateTime::from_unix_timestamp_nanos(at)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        }
        None => native_now(),
    }
}

/// `N` cryptographically secure random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    match AMBIENT.get() {
        Some(a) => (a.fill_random)(&mut out),
        None => native_random(&mut out),
    }
    out
}

#[cfg(not(target_arch = "wasm32"))]
fn native_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[cfg(not(target_arch = "wasm32"))]
fn native_random(out: &mut [u8]) {
    getrandom::fill(out).expect("the operating system's random source failed");
}

// A wasm32 build without the glue's sources has no clock or randomness to
// fall back on: failing loudly beats ids that repeat.
#[cfg(target_arch = "wasm32")]
fn native_now() -> time::OffsetDateTime {
    panic!("no wall clock installed: call ambient::install first")
}

#[cfg(target_arch = "wasm32")]
fn native_random(_: &mut [u8]) {
    panic!("no random source installed: call ambient::install first")
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_bytes_differ_between_calls() {
        assert_ne!(super::random_bytes::<16>(), super::random_bytes::<16>());
    }
}
