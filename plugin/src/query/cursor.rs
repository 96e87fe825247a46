//! Opaque, tamper-evident paging cursors (RFC 9865).
//!
//! A cursor names a position in creation (`seq`) order and a direction. It is
//! signed with the tenant's key over the query it belongs to (endpoint and
//! filter), so it cannot be forged, altered, or replayed in another tenant or
//! query, and it expires after [`CURSOR_TIMEOUT_SECS`]. Because `seq` values
//! are never reused, a position stays meaningful when resources are added or
//! deleted between pages: nothing is skipped or repeated.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{ScimError, ScimResult, ScimType};

/// How long a cursor stays valid, advertised as `cursorTimeout`.
pub const CURSOR_TIMEOUT_SECS: i64 = 3600;

const VERSION: u8 = 1;
const PAYLOAD: usize = 18;
const MAC: usize = 16;

/// Which way a cursor pages from its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Resources after the position (`nextCursor`).
    Forward,
    /// Resources before the position (`previousCursor`).
    Backward,
}

/// A decoded cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub direction: Direction,
    pub seq: u64,
}

fn mac(key: &[u8], scope: &str, payload: &[u8]) -> [u8; MAC] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(&(scope.len() as u64).to_le_bytes());
    m.update(scope.as_bytes());
    m.update(payload);
    let full = m.finalize().into_bytes();
    let mut out = [0u8; MAC];
    out.copy_from_slice(&full[..MAC]);
    out
}

/// Encodes a position for a query `scope`, issued at `now` (Unix seconds).
pub fn encode(key: &[u8], scope: &str, pos: Position, now: i64) -> String {
    let mut bytes = Vec::with_capacity(PAYLOAD + MAC);
    bytes.push(VERSION);
    bytes.push(match pos.direction {
        Direction::Forward => b'f',
        Direction::Backward => b'b',
    });
    bytes.extend_from_slice(&pos.seq.to_le_bytes());
    bytes.extend_from_slice(&now.to_le_bytes());
    let tag = mac(key, scope, &bytes);
    bytes.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn invalid() -> ScimError {
    ScimError::bad_request(
        ScimType::InvalidCursor,
        "The cursor is not valid for this query: it was altered, or belongs to another query or tenant. Request the first page with an empty cursor and follow nextCursor/previousCursor with the same parameters",
    )
}

/// Decodes and verifies a cursor for a query `scope` at `now`.
pub fn decode(key: &[u8], scope: &str, cursor: &str, now: i64) -> ScimResult<Position> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| invalid())?;
    if bytes.len() != PAYLOAD + MAC || bytes[0] != VERSION {
        return Err(invalid());
    }
    let (payload, tag) = bytes.split_at(PAYLOAD);
    let expected = mac(key, scope, payload);
    // Constant-time comparison of the tags.
    if tag
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        != 0
    {
        return Err(invalid());
    }
    let direction = match payload[1] {
        b'f' => Direction::Forward,
        b'b' => Direction::Backward,
        _ => return Err(invalid()),
    };
    let seq = u64::from_le_bytes(payload[2..10].try_into().expect("8 bytes"));
    let issued = i64::from_le_bytes(payload[10..18].try_into().expect("8 bytes"));
    if now.saturating_sub(issued) > CURSOR_TIMEOUT_SECS {
        return Err(ScimError::bad_request(
            ScimType::ExpiredCursor,
            format!(
                "The cursor has expired (cursors are valid for {CURSOR_TIMEOUT_SECS} seconds); start again from the first page"
            ),
        ));
    }
    Ok(Position { direction, seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"tenant-key";
    const POS: Position = Position {
        direction: Direction::Forward,
        seq: 42,
    };

    #[test]
    fn round_trips_with_unreserved_characters() {
        let c = encode(KEY, "Users|filter", POS, 1000);
        assert!(
            c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        );
        assert_eq!(decode(KEY, "Users|filter", &c, 1000).unwrap(), POS);
    }

    #[test]
    fn rejects_tampering_other_scopes_and_keys() {
        let c = encode(KEY, "Users|", POS, 1000);
        let err = |r: ScimResult<Position>| r.unwrap_err().scim_type;
        assert_eq!(
            err(decode(KEY, "Groups|", &c, 1000)),
            Some(ScimType::InvalidCursor)
        );
        assert_eq!(
            err(decode(b"other", "Users|", &c, 1000)),
            Some(ScimType::InvalidCursor)
        );
        assert_eq!(
            err(decode(KEY, "Users|", "garbage!", 1000)),
            Some(ScimType::InvalidCursor)
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&c).unwrap();
        bytes[5] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            err(decode(KEY, "Users|", &forged, 1000)),
            Some(ScimType::InvalidCursor)
        );
    }

    #[test]
    fn expires() {
        let c = encode(KEY, "s", POS, 1000);
        assert!(decode(KEY, "s", &c, 1000 + CURSOR_TIMEOUT_SECS).is_ok());
        let e = decode(KEY, "s", &c, 1001 + CURSOR_TIMEOUT_SECS).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::ExpiredCursor));
    }
}
