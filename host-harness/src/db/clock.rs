//! Times as the database stores them.

/// A UTC time as stored: fixed width, so text order is time order, and
/// readable by SQLite's date functions.
pub fn timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Now, as stored.
pub fn now() -> String {
    timestamp(time::OffsetDateTime::now_utc())
}
