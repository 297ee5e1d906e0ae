//! A test plugin that misbehaves on request, for the host's end-to-end tests.
//!
//! The tenant's plugin setting `mode` picks the behaviour:
//!
//! | `mode` | behaviour |
//! |---|---|
//! | `echo` (or unset) | `user-profile-update` with every app-user attribute unchanged; debug `eventId` |
//! | `settings` | `user-profile-update` with `setting` = setting `probe`, or `null` when unset |
//! | `trap` | panics, which traps |
//! | `loop` | never returns |
//! | `memory-bomb` | keeps 1 MiB chunks until allocation fails, which traps |
//! | `unpaired-link` | `action-update(link-user)` without `user-update` |
//! | `empty-attribute` | `user-profile-update` with an attribute named `""` |
//! | `bad-json` | `user-profile-update` with `x` = the `json` value `{not json` |
//! | `huge` | `user-profile-update` with a 300 KiB string (over Okta's 256 KB body limit) |
//! | `error` | `Err("misbehave: asked to fail")` |
//! | `log-flood` | 10,000 log lines of 1 KiB, 100 KiB each to stdout and stderr, then as `echo` |
//! | `link` | the valid pair: link to `00u-misbehave` |
//! | `counter` | counts the calls this instance served (a static), then by the request's `eventId`: `trap…` traps, `loop…` never returns, `bomb…` eats memory, `error…` declines; otherwise `user-profile-update` with `calls` = the count |
//! | `recursion` | recurses without end, which exhausts the call stack |
//! | `many-commands` | 1,000,000 `action-update(create-user)` commands in one answer |
//! | `host-call-trap` | calls the host's `log` with a string outside its memory: the host call traps while lifting it |
//! | `store-flood` | claims 10,000 keys (`flood-0`…, owner `misbehave`) one after another, ignoring errors; then `user-profile-update` with `claimed`, `taken`, `failed` = the counts |
//! | anything else | `Err("misbehave: unknown mode")` |
//!
//! It also exports the event handler (WIT 0.2.0), by the same setting:
//! `trap` traps, `loop` never returns, `error` declines
//! (`Err("misbehave: asked to fail")`), `store-flood` floods as above then
//! succeeds; anything else logs the event's uuid at info level and succeeds.

use std::sync::atomic::{AtomicU32, Ordering};

use hookbox_sdk::{
    ActionResult, Attribute, ClaimResult, Command, Event, EventHandler, Host, Request, Resolver,
    Response, Value,
};

/// The resolver; exported as the component's `resolve`.
pub struct Misbehave;

impl Resolver for Misbehave {
    fn resolve(request: &Request, host: &Host) -> Result<Response, String> {
        match host.setting("mode").as_deref().unwrap_or("echo") {
            "echo" => Ok(echo(request)),
            "settings" => Ok(Response::new().update_user_profile(
                "setting",
                host.setting("probe").map_or(Value::Null, Value::from),
            )),
            "trap" => panic!("misbehave: asked to trap"),
            "loop" => spin(),
            "memory-bomb" => Ok(memory_bomb()),
            "unpaired-link" => {
                Ok(Response::new().push_raw(Command::ActionUpdate(ActionResult::LinkUser)))
            }
            "empty-attribute" => {
                Ok(
                    Response::new().push_raw(Command::UserProfileUpdate(vec![Attribute {
                        name: String::new(),
                        value: Value::from("x"),
                    }])),
                )
            }
            "bad-json" => Ok(Response::new().update_user_profile("x", Value::json("{not json"))),
            "huge" => Ok(Response::new().update_user_profile("huge", "x".repeat(300 * 1024))),
            "error" => Err("misbehave: asked to fail".into()),
            "log-flood" => {
                log_flood(host);
                Ok(echo(request))
            }
            "link" => Ok(Response::new().link_to("00u-misbehave")),
            "recursion" => {
                let limit = u64::MAX - request.event_id().len() as u64;
                Ok(Response::new().debug("depth", recurse(0, limit).to_string()))
            }
            "many-commands" => Ok((0..MANY_COMMANDS).fold(Response::new(), |r, _| {
                r.push_raw(Command::ActionUpdate(ActionResult::CreateUser))
            })),
            "host-call-trap" => {
                host_call_trap();
                Ok(echo(request))
            }
            "counter" => counter(request),
            "store-flood" => {
                let (claimed, taken, failed) = store_flood(host);
                Ok(Response::new()
                    .update_user_profile("claimed", claimed)
                    .update_user_profile("taken", taken)
                    .update_user_profile("failed", failed))
            }
            _ => Err("misbehave: unknown mode".into()),
        }
    }
}

impl EventHandler for Misbehave {
    fn handle(event: &Event, host: &Host) -> Result<(), String> {
        match host.setting("mode").as_deref().unwrap_or("echo") {
            "trap" => panic!("misbehave: asked to trap"),
            "loop" => spin(),
            "error" => Err("misbehave: asked to fail".into()),
            "store-flood" => {
                store_flood(host);
                Ok(())
            }
            _ => {
                host.info(&format!("misbehave: event {}", event.uuid()));
                Ok(())
            }
        }
    }
}

hookbox_sdk::export!(resolver: Misbehave, handler: Misbehave);

/// Keys claimed by `store-flood`: enough to show a store bound (size, time,
/// per-call cap) or its absence.
const FLOOD_KEYS: u32 = 10_000;

/// Claims `FLOOD_KEYS` distinct keys: (claimed, taken, failed) as counts.
fn store_flood(host: &Host) -> (i64, i64, i64) {
    let (mut claimed, mut taken, mut failed) = (0, 0, 0);
    for i in 0..FLOOD_KEYS {
        match host.claims().claim(&format!("flood-{i}"), "misbehave") {
            Ok(ClaimResult::Claimed | ClaimResult::AlreadyYours) => claimed += 1,
            Ok(ClaimResult::Taken) => taken += 1,
            Err(_) => failed += 1,
        }
    }
    (claimed, taken, failed)
}

fn echo(request: &Request) -> Response {
    let profile = request.app_user().attributes().to_vec();
    Response::new()
        .push_raw(Command::UserProfileUpdate(profile))
        .debug("eventId", request.event_id())
}

/// Calls served by this instance: 1 on a fresh instance, more only when the
/// host reused it (instance mode `reuse`).
static CALLS: AtomicU32 = AtomicU32::new(0);

fn counter(request: &Request) -> Result<Response, String> {
    let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    let event = request.event_id();
    if event.starts_with("trap") {
        panic!("misbehave: asked to trap after {calls} calls");
    } else if event.starts_with("loop") {
        spin()
    } else if event.starts_with("bomb") {
        Ok(memory_bomb())
    } else if event.starts_with("error") {
        Err(format!("misbehave: asked to fail after {calls} calls"))
    } else {
        Ok(Response::new().update_user_profile("calls", i64::from(calls)))
    }
}

fn spin() -> ! {
    let mut counter = 0_u64;
    loop {
        // `black_box` keeps the loop observable, so it cannot be optimised away.
        counter = core::hint::black_box(counter.wrapping_add(1));
    }
}

/// Commands in a `many-commands` answer: far beyond any sane answer (the
/// guest needs about 100 MiB of memory to build and return them).
const MANY_COMMANDS: u32 = 1_000_000;

/// Recurses until wasm's call stack runs out. Scalars only, so every frame
/// lives on the wasm stack (not Rust's shadow stack in linear memory, whose
/// overflow would be an out-of-bounds access instead); the multiply-add after
/// the call keeps it from becoming a loop, and `limit` comes from the caller
/// at run time, so it is never reached in practice.
#[inline(never)]
fn recurse(depth: u64, limit: u64) -> u64 {
    if depth == limit {
        return depth;
    }
    recurse(depth + 1, limit)
        .wrapping_mul(3)
        .wrapping_add(depth)
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // declaring a raw import is unsafe by nature
#[link(wasm_import_module = "hookbox:okta-import/host@0.2.0")]
unsafe extern "C" {
    /// The core-ABI form of `host.log(level, message)` (the SDK imports the
    /// same function; the two imports are one): a level, then the string's
    /// pointer and length in the guest's memory.
    #[link_name = "log"]
    fn raw_log(level: i32, ptr: *const u8, len: usize);
}

/// Passes the host a string that lies outside the guest's memory, which
/// wit-bindgen's safe API never does: the host traps while lifting it.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // the whole point: an ABI-level call no safe guest can make
fn host_call_trap() {
    // SAFETY: not sound on purpose; the host must refuse the out-of-bounds
    // string with a trap before reading it.
    unsafe { raw_log(2, 0xFFFF_0000_usize as *const u8, 0x1_0000) }
}

#[cfg(not(target_arch = "wasm32"))]
fn host_call_trap() {
    panic!("misbehave: host-call-trap runs only as wasm");
}

fn memory_bomb() -> Response {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        // A non-zero fill writes every page: zeroed allocations may be served
        // by fresh, untouched memory. Allocation failure aborts, i.e. traps.
        chunks.push(vec![0xA5; 1 << 20]);
        core::hint::black_box(&chunks);
    }
}

fn log_flood(host: &Host) {
    let line = "x".repeat(1024);
    for _ in 0..10_000 {
        host.info(&line);
    }
    let block = "y".repeat(1024);
    for _ in 0..100 {
        print!("{block}");
        eprint!("{block}");
    }
}
