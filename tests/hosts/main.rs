//! The host test suite: one set of cases run against every host that loads
//! the engine component (`scim-host`, the Python and the Node host, and a
//! vendor's own with `SCIM_HOST_SERVE`), over HTTP only. See README.md.
//!
//! Every case is a `fn(&Host)`; `suite!` makes one `#[test]` of it per
//! host, named `<host>::<case>` (`scim_host::users_crud`,
//! `python::users_crud`, `node::users_crud`, `vendor::users_crud`), so a
//! failure names its host and `cargo test --test hosts python::` runs one
//! host. Each host is started once per test binary and shared by its cases,
//! which keep to users and groups of their own.

mod support;

mod auth;
mod concurrency;
mod dialects;
mod etags;
mod lms;
mod protocol;
mod query;
mod rollback;
mod sync_log;

/// One `#[test]` per host and case.
macro_rules! suite {
    ($($module:ident :: $case:ident),* $(,)?) => {
        suite!(@host scim_host, ScimHost; $($module::$case),*);
        suite!(@host python, Python; $($module::$case),*);
        suite!(@host node, Node; $($module::$case),*);
        suite!(@host vendor, Vendor; $($module::$case),*);
    };
    (@host $host:ident, $kind:ident; $($module:ident :: $case:ident),*) => {
        mod $host {
            $(
                #[test]
                fn $case() {
                    crate::support::run(crate::support::Kind::$kind, crate::$module::$case);
                }
            )*
        }
    };
}

suite! {
    protocol::discovery,
    protocol::users_crud,
    protocol::groups_crud,
    protocol::duplicate_user_name_is_a_conflict,
    protocol::unknown_ids_are_not_found,
    protocol::bad_requests_are_scim_errors,
    dialects::entra_id_patches,
    dialects::okta_patches,
    dialects::path_less_patches,
    query::user_name_eq_ignores_case,
    query::sw_and_or_filters,
    query::index_paging,
    query::cursor_paging,
    query::group_filters,
    etags::etags_and_preconditions,
    lms::created_user_is_an_active_learner,
    lms::deactivation_suspends_and_reactivation_restores,
    lms::profile_follows_the_user,
    lms::group_membership_is_a_team,
    lms::group_rename_renames_the_team,
    lms::deleted_user_is_suspended,
    sync_log::writes_are_logged_in_order,
    sync_log::failures_are_logged,
    rollback::group_create_failing_on_a_member_leaves_nothing,
    rollback::patch_failing_after_a_written_op_leaves_nothing,
    auth::unauthorized_requests_are_refused,
    auth::test_api_needs_its_flag,
    concurrency::concurrent_writes_are_isolated,
}
