//! Faults that tests inject, to check that a panic anywhere in a request or
//! a background batch is contained: answered with a 500, rolled back,
//! recorded, and the server goes on.
//!
//! Only debug builds have them (the end-to-end tests run the debug
//! binary): `SCIM_FAULT=point@tenant[,point@tenant…]`, read once, makes
//! [`hit`] panic with "injected fault at {point}" when it is reached for
//! that tenant (by name). The points:
//!
//! - `before-commit`: `App::execute`, right before the `COMMIT` of a
//!   successful SCIM write;
//! - `lms-effect`: the `lms.apply` host import, after the first change of
//!   a call was applied (the engine's call into the host);
//! - `drain-batch`: a background batch, after the engine ran and before
//!   its commit;
//! - `admin`: the admin API's write transaction (granting or revoking by
//!   hand), after the change and before its commit.
//!
//! In release builds [`hit`] and [`armed`] do nothing, and the variable is
//! never read.

/// Where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    BeforeCommit,
    LmsEffect,
    DrainBatch,
    Admin,
}

impl Point {
    /// The point's name in `SCIM_FAULT`.
    pub fn name(self) -> &'static str {
        match self {
            Point::BeforeCommit => "before-commit",
            Point::LmsEffect => "lms-effect",
            Point::DrainBatch => "drain-batch",
            Point::Admin => "admin",
        }
    }
}

/// Whether `point` is armed for some tenant (so that a caller who knows
/// only the tenant's id looks its name up only then).
#[inline(always)]
pub fn armed(point: Point) -> bool {
    #[cfg(debug_assertions)]
    {
        faults().iter().any(|(p, _)| *p == point)
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = point;
        false
    }
}

/// Panics if `point` is armed for `tenant`.
#[inline(always)]
pub fn hit(point: Point, tenant: &str) {
    #[cfg(debug_assertions)]
    if faults().iter().any(|(p, t)| *p == point && t == tenant) {
        panic!("injected fault at {}", point.name());
    }
    #[cfg(not(debug_assertions))]
    let _ = (point, tenant);
}

/// [`hit`] for a tenant known by its id.
#[inline(always)]
pub fn hit_id(point: Point, conn: &crate::db::sql::Connection, tenant: i64) {
    if armed(point) {
        let name: Option<String> = conn
            .query_row("SELECT name FROM tenants WHERE id = ?1", [tenant], |r| {
                r.get(0)
            })
            .ok();
        if let Some(name) = name {
            hit(point, &name);
        }
    }
}

#[cfg(debug_assertions)]
fn faults() -> &'static [(Point, String)] {
    static FAULTS: std::sync::OnceLock<Vec<(Point, String)>> = std::sync::OnceLock::new();
    FAULTS.get_or_init(|| {
        let spec = std::env::var("SCIM_FAULT").unwrap_or_default();
        let faults = parse(&spec);
        if !faults.is_empty() {
            tracing::warn!(SCIM_FAULT = spec, "fault injection is on");
        }
        faults
    })
}

/// `point@tenant[,point@tenant…]`; unknown points and entries without a
/// tenant are ignored (with a warning).
#[cfg(debug_assertions)]
fn parse(spec: &str) -> Vec<(Point, String)> {
    const POINTS: [Point; 4] = [
        Point::BeforeCommit,
        Point::LmsEffect,
        Point::DrainBatch,
        Point::Admin,
    ];
    spec.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .filter_map(|entry| {
            let parsed = entry.split_once('@').and_then(|(point, tenant)| {
                let point = POINTS.into_iter().find(|p| p.name() == point.trim())?;
                let tenant = tenant.trim();
                (!tenant.is_empty()).then(|| (point, tenant.to_string()))
            });
            if parsed.is_none() {
                tracing::warn!(entry, "SCIM_FAULT: not a known point@tenant; ignored");
            }
            parsed
        })
        .collect()
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn faults_are_points_at_tenants() {
        assert_eq!(
            parse("before-commit@a, drain-batch@b ,admin@a"),
            [
                (Point::BeforeCommit, "a".to_string()),
                (Point::DrainBatch, "b".to_string()),
                (Point::Admin, "a".to_string()),
            ]
        );
        assert_eq!(
            parse("lms-effect@x,nowhere@a,admin,admin@,"),
            [(Point::LmsEffect, "x".to_string())]
        );
        assert!(parse("").is_empty());
    }
}
