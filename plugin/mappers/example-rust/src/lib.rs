//! An example mapping plugin: a WebAssembly component of the world
//! `lms:mapping/mapper@0.1.0` (`wit/mapper/mapper.wit`).
//!
//! The policy lives in [`policy`], in plain Rust with no WIT types, so it is
//! unit-tested natively (`cargo test -p example-rust-mapper`). This file is
//! only the glue: WIT `user` in, WIT `grant`s or `mapping-error` out.
//!
//! Build the component:
//!
//! ```sh
//! cargo build -p example-rust-mapper --target wasm32-wasip2 --profile wasm
//! # target/wasm32-wasip2/wasm/example_rust_mapper.wasm
//! ```

// The export glue `generate!` writes takes the user record's fields as
// separate parameters.
#![allow(clippy::too_many_arguments)]

pub mod policy;

use std::cell::RefCell;
use std::rc::Rc;

wit_bindgen::generate!({
    path: "../../../wit/mapper",
    world: "mapper",
});

// `generate!` brings the world's `use types.{user, grant, mapping-error}`
// into scope as `User`, `Grant` and `MappingError`; only the kind is missing.
use lms::mapping::types::GrantKind;

struct Plugin;

impl Guest for Plugin {
    fn assign(user: User, settings: String) -> Result<Vec<Grant>, MappingError> {
        let input = policy::UserInput {
            id: &user.id,
            user_name: &user.user_name,
            active: user.active,
            groups: user
                .groups
                .iter()
                .map(|g| policy::GroupInput {
                    id: &g.id,
                    display_name: g.display_name.as_deref(),
                })
                .collect(),
            scim_json: &user.scim_json,
        };
        match parsed(&settings).and_then(|s| policy::assign_with(&input, &s)) {
            Ok(grants) => Ok(grants
                .into_iter()
                .map(|g| Grant {
                    kind: match g.kind {
                        policy::Kind::Role => GrantKind::Role,
                        policy::Kind::Team => GrantKind::Team,
                        policy::Kind::LearningPath => GrantKind::LearningPath,
                    },
                    name: g.name,
                    reason: g.reason,
                })
                .collect()),
            Err(e) => Err(MappingError {
                code: e.code.to_string(),
                message: e.message,
            }),
        }
    }
}

thread_local! {
    /// The settings parsed last, with their text. The host may let one
    /// instance serve several users of a tenant in a row, and parsing the
    /// settings is most of a call's work; a new text is parsed again.
    static PARSED: RefCell<Option<(String, Rc<policy::Settings>)>> = const { RefCell::new(None) };
}

fn parsed(text: &str) -> Result<Rc<policy::Settings>, policy::Refusal> {
    PARSED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((t, s)) = cache.as_ref()
            && t == text
        {
            return Ok(s.clone());
        }
        let s = Rc::new(policy::Settings::parse(text)?);
        *cache = Some((text.to_string(), s.clone()));
        Ok(s)
    })
}

export!(Plugin);
