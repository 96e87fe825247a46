//! Browser tests of the admin console (`/admin`): a real `scim-host` with
//! the real component and two seeded tenants, driven through Debian's
//! Chromium by the Node tests beside this file (`tests/console/tests`,
//! playwright-core and axe-core pinned in `package-lock.json`).
//!
//! The tests sign in, find a failed event and open its detail, look up a
//! learner and read why it holds a team, edit rules (a line error as you
//! type, preview, apply with confirmation), upload a real mapping plugin
//! and roll it back, and add a catalogue item; a wrong token, another
//! tenant's data and a forged cross-site POST are refused. Every page is
//! checked with axe-core and for console errors, the main tasks are done
//! with the keyboard alone, and each page is photographed into
//! `target/console-screenshots/` (and into `host-harness/docs/console/`
//! with `SCIM_CONSOLE_SCREENSHOTS_UPDATE=1`).
//!
//! It needs Chromium (`apt-get install chromium`, or `SCIM_CHROMIUM=path`)
//! and Node.js 20 with npm; the packages are installed once per change of
//! the lockfile.

#[path = "../e2e/support.rs"]
#[allow(dead_code)]
mod support;

/// Read by `support::postgres_backend`: SQLite unless
/// `SCIM_TEST_BACKEND=postgres` says otherwise.
pub const POSTGRES: bool = false;

mod node;
mod seed;

use std::time::Instant;

#[test]
fn console_in_a_browser() {
    let chromium = node::chromium();
    let started = Instant::now();
    node::install();
    eprintln!("console: packages ready in {:?}", started.elapsed());
    let plugin = seed::example_plugin();
    let seeded = seed::Seeded::start(&plugin);
    eprintln!("console: server seeded in {:?}", started.elapsed());
    let ran = Instant::now();
    node::run_tests(&chromium, &seeded);
    eprintln!(
        "console: browser tests passed in {:?} ({:?} in all)",
        ran.elapsed(),
        started.elapsed()
    );
}
