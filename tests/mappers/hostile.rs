//! Mapping-plugin fixtures: WebAssembly components for world
//! `lms:mapping/mapper@0.1.0` (wit/mapper/mapper.wit), most of them hostile,
//! built at test time from hand-written WAT — no Rust-to-wasm compilation.
//!
//! Each fixture is a core module written in WAT (crate `wat`), with the
//! world's component-type metadata embedded (`wit_component::
//! embed_component_metadata`, WIT resolved by `wit-parser` from
//! `<repo>/wit/mapper`), then wrapped into a component by
//! `wit_component::ComponentEncoder`. Building one takes a few milliseconds,
//! and [`build`] caches the bytes per process.
//!
//! Include it with `#[path = "<...>/tests/mappers/hostile.rs"] mod hostile;`:
//! it uses nothing but std and the dev-dependencies `wat`, `wit-component`
//! and `wit-parser` of scim-host.
//!
//! # Canonical ABI of `assign` (what the WAT below implements)
//!
//! `assign: func(user: user, settings: string) -> result<list<grant>, mapping-error>`
//! flattens to 14 core parameters (≤ 16, so they are passed flat, not through
//! a pointer), in this order:
//!
//! | user field   | core params                       |
//! |--------------|-----------------------------------|
//! | id           | ptr, len                          |
//! | user-name    | ptr, len                          |
//! | external-id  | tag (0 none / 1 some), ptr, len   |
//! | active       | i32 (0/1)                         |
//! | groups       | ptr, len (elements: [`GROUP_SIZE`] bytes) |
//! | scim-json    | ptr, len                          |
//! | *settings*   | ptr, len                          |
//!
//! The result flattens to 5 values (> 1), so the export returns one `i32`:
//! a pointer to a return area the callee owns ([`RESULT_SIZE`] bytes,
//! align 4): the discriminant byte at 0 (0 = ok, 1 = err), the payload at 4:
//! ok = list (ptr at 4, len at 8); err = `mapping-error` (code ptr/len at
//! 4/8, message ptr/len at 12/16). See the `GRANT_*`/`GROUP_*` constants for
//! the record layouts; the `sandbox` test checks them all against
//! `wit_parser::SizeAlign` and `Resolve::wasm_signature`.
//!
//! The module exports `memory`, `cabi_realloc` (a bump allocator that grows
//! memory as needed, never frees; each call runs in a fresh instance) and
//! `assign` (the legacy core name of a world-level function export). There
//! is no `cabi_post_assign`: nothing to free.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;

use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};
use wit_parser::{Resolve, WorldId};

/// A plugin the tests install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    /// Returns role `learner` (reason `active`) and, for every group with a display name, team `<display name>` (reason `group:<id>`). Well-behaved; used for the happy path.
    Teams,
    /// `loop br 0 end`: never returns.
    InfiniteLoop,
    /// Grows memory by 1 page in a loop until memory.grow fails, then traps/loops (must hit the host's memory cap).
    MemoryBomb,
    /// Returns a list of 100,000 grants (role "x", reason "x") — larger than the 20 KB output limit.
    HugeOutput,
    /// `unreachable`.
    Trap,
    /// Unbounded recursion (stack overflow).
    StackOverflow,
    /// Imports `wasi:filesystem/preopens@0.2.0` (a function `get-directories`) — must be refused at install.
    ImportsFilesystem,
    /// Imports `wasi:sockets/tcp-create-socket@0.2.0` — refused at install.
    ImportsSockets,
    /// Returns role `wizard` (not in any catalogue), reason `magic`.
    UnknownRole,
    /// Returns role `admin` for everyone, reason `everyone`.
    GrantsAdmin,
    /// Returns `Err(mapping-error { code: "unknown-office", message: "..." })`.
    Refuses,
    /// A core wasm module, not a component (refused at install).
    NotAComponent,
    /// A component of a different world (exports a function `run: func() -> u32` instead of `assign`) — refused at install.
    WrongWorld,
}

impl Plugin {
    /// Every fixture, in declaration order.
    pub const ALL: [Plugin; 13] = [
        Plugin::Teams,
        Plugin::InfiniteLoop,
        Plugin::MemoryBomb,
        Plugin::HugeOutput,
        Plugin::Trap,
        Plugin::StackOverflow,
        Plugin::ImportsFilesystem,
        Plugin::ImportsSockets,
        Plugin::UnknownRole,
        Plugin::GrantsAdmin,
        Plugin::Refuses,
        Plugin::NotAComponent,
        Plugin::WrongWorld,
    ];
}

/// The number of grants [`Plugin::HugeOutput`] returns.
pub const HUGE_OUTPUT_GRANTS: u32 = 100_000;
/// The `code` of [`Plugin::Refuses`]'s error.
pub const REFUSAL_CODE: &str = "unknown-office";
/// The `message` of [`Plugin::Refuses`]'s error.
pub const REFUSAL_MESSAGE: &str =
    "this plugin has no office mapping for the user; add the office to the plugin settings";
/// The interface [`Plugin::ImportsFilesystem`] imports.
pub const FILESYSTEM_IMPORT: &str = "wasi:filesystem/preopens@0.2.0";
/// The interface [`Plugin::ImportsSockets`] imports.
pub const SOCKETS_IMPORT: &str = "wasi:sockets/tcp-create-socket@0.2.0";

// Canonical-ABI layouts (wasm32), checked by the `sandbox` test.

/// `grant`: size and alignment.
pub const GRANT_SIZE: u32 = 20;
pub const GRANT_ALIGN: u32 = 4;
/// `grant.kind` (`grant-kind`, an enum of 3 cases: one byte).
pub const GRANT_KIND: u32 = 0;
/// `grant.name` (ptr, then len at +4).
pub const GRANT_NAME: u32 = 4;
/// `grant.reason` (ptr, then len at +4).
pub const GRANT_REASON: u32 = 12;
/// `group`: size and alignment.
pub const GROUP_SIZE: u32 = 32;
pub const GROUP_ALIGN: u32 = 4;
/// `group.id` (ptr, then len at +4).
pub const GROUP_ID: u32 = 0;
/// `group.display-name`: `option<string>`, its tag byte here, the string
/// (ptr, len) at +4.
pub const GROUP_DISPLAY_NAME: u32 = 8;
/// `group.external-id`: `option<string>`, like `display-name`.
pub const GROUP_EXTERNAL_ID: u32 = 20;
/// `result<list<grant>, mapping-error>`: size and alignment.
pub const RESULT_SIZE: u32 = 20;
pub const RESULT_ALIGN: u32 = 4;
/// The offset of the result's payload (after the one-byte discriminant).
pub const RESULT_PAYLOAD: u32 = 4;
/// `mapping-error.code` and `.message` offsets within the error record.
pub const ERROR_CODE: u32 = 0;
pub const ERROR_MESSAGE: u32 = 8;
/// Enum values of `grant-kind`.
pub const KIND_ROLE: u32 = 0;
pub const KIND_TEAM: u32 = 1;
pub const KIND_LEARNING_PATH: u32 = 2;

/// The component (or, for [`Plugin::NotAComponent`], core module) bytes of
/// `p`. Built on first use, then cached for the life of the process.
pub fn build(p: Plugin) -> Vec<u8> {
    static CACHE: [OnceLock<Vec<u8>>; Plugin::ALL.len()] = [const { OnceLock::new() }; 13];
    CACHE[p as usize].get_or_init(|| build_uncached(p)).clone()
}

/// The directory of the `lms:mapping` WIT package.
pub fn mapper_wit_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/mapper"))
}

fn build_uncached(p: Plugin) -> Vec<u8> {
    let mapper = World::Mapper;
    match p {
        Plugin::Teams => component(mapper, &teams_module()),
        Plugin::InfiniteLoop => component(
            mapper,
            &assign_module("", "", "(loop $spin (br $spin)) unreachable"),
        ),
        Plugin::MemoryBomb => component(
            mapper,
            &assign_module(
                "",
                "",
                // memory.grow returns -1 once the host refuses; then trap.
                "(loop $more
                    (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
                 unreachable",
            ),
        ),
        Plugin::HugeOutput => component(mapper, &huge_output_module()),
        Plugin::Trap => component(mapper, &assign_module("", "", "unreachable")),
        Plugin::StackOverflow => component(
            mapper,
            &assign_module(
                "",
                // Not a tail call: the add after the call keeps every frame.
                "(func $recurse (param $depth i32) (result i32)
                    (i32.add
                      (call $recurse (i32.add (local.get $depth) (i32.const 1)))
                      (i32.const 1)))",
                "(drop (call $recurse (i32.const 0))) unreachable",
            ),
        ),
        Plugin::ImportsFilesystem => component(
            World::ImportsFilesystem,
            &assign_module(
                &format!(
                    r#"(import "{FILESYSTEM_IMPORT}" "get-directories" (func $get_directories (result i32)))"#
                ),
                "",
                "(drop (call $get_directories)) (call $ok (i32.const 0) (i32.const 0))",
            ),
        ),
        Plugin::ImportsSockets => component(
            World::ImportsSockets,
            &assign_module(
                &format!(
                    r#"(import "{SOCKETS_IMPORT}" "create-tcp-socket" (func $create_tcp_socket (result i32)))"#
                ),
                "",
                "(drop (call $create_tcp_socket)) (call $ok (i32.const 0) (i32.const 0))",
            ),
        ),
        Plugin::UnknownRole => component(mapper, &one_grant_module(KIND_ROLE, "wizard", "magic")),
        Plugin::GrantsAdmin => component(mapper, &one_grant_module(KIND_ROLE, "admin", "everyone")),
        Plugin::Refuses => component(mapper, &refuses_module()),
        // A plausible mistake: a well-formed core module with the right
        // exports, uploaded without being made a component.
        Plugin::NotAComponent => wat_to_wasm(&teams_module()),
        Plugin::WrongWorld => component(World::Runner, &runner_module()),
    }
}

// ---------------------------------------------------------------------------
// Worlds.

#[derive(Clone, Copy)]
enum World {
    /// `lms:mapping/mapper@0.1.0`.
    Mapper,
    /// The mapper world plus `import wasi:filesystem/preopens@0.2.0`.
    ImportsFilesystem,
    /// The mapper world plus `import wasi:sockets/tcp-create-socket@0.2.0`.
    ImportsSockets,
    /// `export run: func() -> u32` and nothing else.
    Runner,
}

/// Stand-ins for WASI packages: only the import names matter (the host
/// refuses them by name), not the real WASI signatures.
const FAKE_WASI_FILESYSTEM: &str = "package wasi:filesystem@0.2.0;
interface preopens {
    get-directories: func() -> u32;
}
";
const FAKE_WASI_SOCKETS: &str = "package wasi:sockets@0.2.0;
interface tcp-create-socket {
    create-tcp-socket: func() -> u32;
}
";
const HOSTILE_WORLDS: &str = "package lms:hostile-fixtures@0.1.0;
world imports-filesystem {
    include lms:mapping/mapper@0.1.0;
    import wasi:filesystem/preopens@0.2.0;
}
world imports-sockets {
    include lms:mapping/mapper@0.1.0;
    import wasi:sockets/tcp-create-socket@0.2.0;
}
world runner {
    export run: func() -> u32;
}
";

fn resolve(world: World) -> (Resolve, WorldId) {
    let mut resolve = Resolve::default();
    let dir = mapper_wit_dir();
    let (mapping, _) = resolve
        .push_dir(&dir)
        .unwrap_or_else(|e| panic!("resolving {}: {e:?}", dir.display()));
    let push = |resolve: &mut Resolve, name: &str, src: &str| {
        resolve
            .push_str(name, src)
            .unwrap_or_else(|e| panic!("resolving {name}: {e:?}"))
    };
    let (package, name) = match world {
        World::Mapper => (mapping, "mapper"),
        other => {
            push(
                &mut resolve,
                "fake-wasi-filesystem.wit",
                FAKE_WASI_FILESYSTEM,
            );
            push(&mut resolve, "fake-wasi-sockets.wit", FAKE_WASI_SOCKETS);
            let hostile = push(&mut resolve, "hostile-worlds.wit", HOSTILE_WORLDS);
            let name = match other {
                World::ImportsFilesystem => "imports-filesystem",
                World::ImportsSockets => "imports-sockets",
                World::Runner => "runner",
                World::Mapper => unreachable!(),
            };
            (hostile, name)
        }
    };
    let id = resolve
        .select_world(&[package], Some(name))
        .unwrap_or_else(|e| panic!("selecting world {name}: {e:?}"));
    (resolve, id)
}

fn wat_to_wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap_or_else(|e| panic!("fixture WAT does not parse: {e}\n{wat}"))
}

fn component(world: World, wat: &str) -> Vec<u8> {
    let (resolve, world) = resolve(world);
    let mut module = wat_to_wasm(wat);
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .unwrap_or_else(|e| panic!("embedding component metadata: {e:?}"));
    ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| panic!("encoding the component: {e:?}\n{wat}"))
}

// ---------------------------------------------------------------------------
// Core modules.

/// The return area (static, [`RESULT_SIZE`] bytes).
const RET_AREA: u32 = 8;
/// Where string constants start.
const DATA_START: u32 = RET_AREA + RESULT_SIZE;
/// The lowest address the bump allocator hands out.
const MIN_HEAP: u32 = 1024;

/// `assign`'s 14 flat core parameters (see the module docs).
const ASSIGN_PARAMS: &str = "(param $id_ptr i32) (param $id_len i32)
    (param $user_name_ptr i32) (param $user_name_len i32)
    (param $external_id_tag i32) (param $external_id_ptr i32) (param $external_id_len i32)
    (param $active i32)
    (param $groups_ptr i32) (param $groups_len i32)
    (param $scim_json_ptr i32) (param $scim_json_len i32)
    (param $settings_ptr i32) (param $settings_len i32)
    (result i32)";

/// String constants of a module, laid out from [`DATA_START`].
struct Data {
    next: u32,
    segments: String,
}

impl Data {
    fn new() -> Self {
        Data {
            next: DATA_START,
            segments: String::new(),
        }
    }

    /// Places `s` in the data segment; returns its `(ptr, len)`.
    fn string(&mut self, s: &str) -> (u32, u32) {
        let ptr = self.next;
        let mut escaped = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b" :;,.-_/".contains(&b) {
                escaped.push(b as char);
            } else {
                write!(escaped, "\\{b:02x}").unwrap();
            }
        }
        writeln!(self.segments, "  (data (i32.const {ptr}) \"{escaped}\")").unwrap();
        self.next += s.len() as u32;
        (ptr, s.len() as u32)
    }

    fn heap_start(&self) -> u32 {
        self.next.next_multiple_of(8).max(MIN_HEAP)
    }
}

/// A module with the shared runtime (memory, allocator, result helpers) and
/// a `assign` export whose body is `body` (which must leave the return-area
/// pointer on the stack, or not return). `imports` go first (WAT wants them
/// before definitions); `funcs` are extra functions.
fn module(imports: &str, data: &Data, funcs: &str, locals: &str, body: &str) -> String {
    let heap = data.heap_start();
    let segments = &data.segments;
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const {heap}))
{segments}
  ;; Bump allocation; grows memory as needed, traps when it cannot.
  (func $alloc (param $align i32) (param $size i32) (result i32)
    (local $ptr i32) (local $end i64)
    (local.set $ptr
      (i32.and
        (i32.sub (i32.add (global.get $heap) (local.get $align)) (i32.const 1))
        (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end
      (i64.add (i64.extend_i32_u (local.get $ptr)) (i64.extend_i32_u (local.get $size))))
    (if (i64.gt_u (local.get $end) (i64.const 0xffffffff)) (then unreachable))
    (block $enough
      (loop $grow
        (br_if $enough
          (i64.le_u (local.get $end)
            (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (global.set $heap (i32.wrap_i64 (local.get $end)))
    (local.get $ptr))

  (func (export "cabi_realloc")
    (param $old_ptr i32) (param $old_size i32) (param $align i32) (param $new_size i32)
    (result i32)
    (local $new i32)
    (local.set $new (call $alloc (local.get $align) (local.get $new_size)))
    (if (local.get $old_ptr)
      (then
        (memory.copy (local.get $new) (local.get $old_ptr)
          (select (local.get $old_size) (local.get $new_size)
            (i32.lt_u (local.get $old_size) (local.get $new_size))))))
    (local.get $new))

  ;; Writes one `grant` record at $at.
  (func $grant (param $at i32) (param $kind i32)
    (param $name_ptr i32) (param $name_len i32) (param $reason_ptr i32) (param $reason_len i32)
    (i32.store8 offset={GRANT_KIND} (local.get $at) (local.get $kind))
    (i32.store offset={GRANT_NAME} (local.get $at) (local.get $name_ptr))
    (i32.store offset={name_len} (local.get $at) (local.get $name_len))
    (i32.store offset={GRANT_REASON} (local.get $at) (local.get $reason_ptr))
    (i32.store offset={reason_len} (local.get $at) (local.get $reason_len)))

  ;; `ok(list)`: fills the return area, returns its address.
  (func $ok (param $list_ptr i32) (param $list_len i32) (result i32)
    (i32.store8 (i32.const {RET_AREA}) (i32.const 0))
    (i32.store (i32.const {ok_ptr}) (local.get $list_ptr))
    (i32.store (i32.const {ok_len}) (local.get $list_len))
    (i32.const {RET_AREA}))

  ;; `err(mapping-error)`: fills the return area, returns its address.
  (func $err (param $code_ptr i32) (param $code_len i32)
    (param $message_ptr i32) (param $message_len i32) (result i32)
    (i32.store8 (i32.const {RET_AREA}) (i32.const 1))
    (i32.store (i32.const {code_ptr}) (local.get $code_ptr))
    (i32.store (i32.const {code_len}) (local.get $code_len))
    (i32.store (i32.const {message_ptr}) (local.get $message_ptr))
    (i32.store (i32.const {message_len}) (local.get $message_len))
    (i32.const {RET_AREA}))

  {funcs}

  (func (export "assign") {ASSIGN_PARAMS}
    {locals}
    {body}))
"#,
        name_len = GRANT_NAME + 4,
        reason_len = GRANT_REASON + 4,
        ok_ptr = RET_AREA + RESULT_PAYLOAD,
        ok_len = RET_AREA + RESULT_PAYLOAD + 4,
        code_ptr = RET_AREA + RESULT_PAYLOAD + ERROR_CODE,
        code_len = RET_AREA + RESULT_PAYLOAD + ERROR_CODE + 4,
        message_ptr = RET_AREA + RESULT_PAYLOAD + ERROR_MESSAGE,
        message_len = RET_AREA + RESULT_PAYLOAD + ERROR_MESSAGE + 4,
    )
}

/// A module whose `assign` has no locals and no string constants.
fn assign_module(imports: &str, funcs: &str, body: &str) -> String {
    module(imports, &Data::new(), funcs, "", body)
}

fn teams_module() -> String {
    let mut data = Data::new();
    let (learner, learner_len) = data.string("learner");
    let (active, active_len) = data.string("active");
    let (prefix, prefix_len) = data.string("group:");
    let body = format!(
        "(local.set $list
      (call $alloc (i32.const {GRANT_ALIGN})
        (i32.mul (i32.add (local.get $groups_len) (i32.const 1)) (i32.const {GRANT_SIZE}))))
    (call $grant (local.get $list) (i32.const {KIND_ROLE})
      (i32.const {learner}) (i32.const {learner_len}) (i32.const {active}) (i32.const {active_len}))
    (local.set $count (i32.const 1))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $groups_len)))
        (local.set $group
          (i32.add (local.get $groups_ptr) (i32.mul (local.get $i) (i32.const {GROUP_SIZE}))))
        (if (i32.load8_u offset={GROUP_DISPLAY_NAME} (local.get $group))
          (then
            ;; reason = \"group:\" + id, in fresh memory
            (local.set $group_id_len (i32.load offset={group_id_len} (local.get $group)))
            (local.set $reason
              (call $alloc (i32.const 1) (i32.add (local.get $group_id_len) (i32.const {prefix_len}))))
            (memory.copy (local.get $reason) (i32.const {prefix}) (i32.const {prefix_len}))
            (memory.copy
              (i32.add (local.get $reason) (i32.const {prefix_len}))
              (i32.load offset={GROUP_ID} (local.get $group))
              (local.get $group_id_len))
            ;; name = the display name, where the host put it
            (call $grant
              (i32.add (local.get $list) (i32.mul (local.get $count) (i32.const {GRANT_SIZE})))
              (i32.const {KIND_TEAM})
              (i32.load offset={display_name_ptr} (local.get $group))
              (i32.load offset={display_name_len} (local.get $group))
              (local.get $reason)
              (i32.add (local.get $group_id_len) (i32.const {prefix_len})))
            (local.set $count (i32.add (local.get $count) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    (call $ok (local.get $list) (local.get $count))",
        group_id_len = GROUP_ID + 4,
        display_name_ptr = GROUP_DISPLAY_NAME + 4,
        display_name_len = GROUP_DISPLAY_NAME + 8,
    );
    module(
        "",
        &data,
        "",
        "(local $list i32) (local $count i32) (local $i i32) (local $group i32)
    (local $group_id_len i32) (local $reason i32)",
        &body,
    )
}

fn huge_output_module() -> String {
    let mut data = Data::new();
    let (x, x_len) = data.string("x");
    let body = format!(
        "(local.set $list
      (call $alloc (i32.const {GRANT_ALIGN}) (i32.const {size})))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (i32.const {HUGE_OUTPUT_GRANTS})))
        (call $grant
          (i32.add (local.get $list) (i32.mul (local.get $i) (i32.const {GRANT_SIZE})))
          (i32.const {KIND_ROLE})
          (i32.const {x}) (i32.const {x_len}) (i32.const {x}) (i32.const {x_len}))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    (call $ok (local.get $list) (i32.const {HUGE_OUTPUT_GRANTS}))",
        size = HUGE_OUTPUT_GRANTS * GRANT_SIZE,
    );
    module("", &data, "", "(local $list i32) (local $i i32)", &body)
}

fn one_grant_module(kind: u32, name: &str, reason: &str) -> String {
    let mut data = Data::new();
    let (name, name_len) = data.string(name);
    let (reason, reason_len) = data.string(reason);
    let body = format!(
        "(local.set $list (call $alloc (i32.const {GRANT_ALIGN}) (i32.const {GRANT_SIZE})))
    (call $grant (local.get $list) (i32.const {kind})
      (i32.const {name}) (i32.const {name_len}) (i32.const {reason}) (i32.const {reason_len}))
    (call $ok (local.get $list) (i32.const 1))"
    );
    module("", &data, "", "(local $list i32)", &body)
}

fn refuses_module() -> String {
    let mut data = Data::new();
    let (code, code_len) = data.string(REFUSAL_CODE);
    let (message, message_len) = data.string(REFUSAL_MESSAGE);
    let body = format!(
        "(call $err (i32.const {code}) (i32.const {code_len})
      (i32.const {message}) (i32.const {message_len}))"
    );
    module("", &data, "", "", &body)
}

/// World `runner`: `run: func() -> u32`, nothing else.
fn runner_module() -> String {
    r#"(module
  (memory (export "memory") 1)
  (func (export "run") (result i32) (i32.const 42)))
"#
    .to_string()
}
