//! hookbox's reference resolver: a unique login when Okta reports a login conflict.
//!
//! Okta's import guide (only ever published as pseudo-code) infixes the
//! middle name when an imported user's login collides with an existing Okta
//! user: `george.smith@example.com` becomes `george.alexander.smith@example.com`.
//! This plugin does that, and also decides the cases the guide is silent on,
//! so that the login it answers is valid, unique (claimed in hookbox's claim
//! store, and checked against the tenant's Okta directory when it has one)
//! and the same for the same user on a retry, a re-run or a restart.
//!
//! # Behaviour
//!
//! - **No login conflict** (`context.conflicts` lacks `login`): no commands.
//! - **Domain**: the part after the last `@` of the conflicting login, the
//!   Okta user profile's `login`. Without a text `login`, or without a domain
//!   in it, the plugin answers an error summary (Okta then creates the user
//!   as it would have anyway and logs the summary).
//! - **Names**: first, middle and last name come from the app-user profile,
//!   else from the Okta user profile. Their attribute names are the settings
//!   `first_name_attribute`, `middle_name_attribute`, `last_name_attribute`
//!   (defaults `firstName`, `middleName`, `lastName`). A value that is not
//!   text, or that normalises to nothing, counts as absent.
//! - **Normalisation** ([`normalise_name`]): lowercase; Latin letters with
//!   diacritics transliterated to ASCII (`é`→`e`, `ß`→`ss`, `æ`→`ae`, `þ`→`th`…,
//!   covering Latin-1 Supplement, Latin Extended-A and common Extended-B
//!   letters); apostrophes dropped (`O'Brien`→`obrien`); spaces, hyphens,
//!   underscores, dots and other punctuation become one `-` (`Mary Ann`→
//!   `mary-ann`), never leading or trailing; anything else (other scripts,
//!   emoji, symbols) dropped.
//! - **Candidates**, in this order ([`candidates`]):
//!   1. first, middle and last name: `first.middle.last` (rule `middle-name`);
//!      with first or last name missing, the conflicting login's local part,
//!      normalised piece by piece between its dots (or `user` if nothing is
//!      left of it), as the base: `base.middle` (rule `login-base-middle-name`);
//!   2. `first.last.<suffix>` (rule `hashed-suffix`), or `base.<suffix>`
//!      (rule `login-base-hashed-suffix`), with the suffix of round 0;
//!   3. the same with the suffixes of rounds 1 to 16 (rule `…+rehashed`).
//!
//!   A candidate equal to the conflicting login (ignoring ASCII case) is left out.
//! - **Suffix** ([`identity_suffix`]): six lowercase hex digits, the top 24
//!   bits of the 64-bit FNV-1a hash of the user's identity (round 0), or of
//!   the identity, a zero byte and the round number: the text of the
//!   app-user attribute named by setting `unique_attribute` (default
//!   `externalId`), or its JSON text if it is not a string, when it is present,
//!   not `null` and not blank; otherwise the app-user profile as a compact JSON
//!   object with its attributes sorted by name.
//! - **Claims**: the owner is `id:<identity>` ([`owner_for`]; identities over
//!   480 bytes by their hash); a login's key is the login with ASCII letters
//!   lowercased ([`login_key`]). The login recorded for the owner (key
//!   `owner:<owner>`, held by the login) is answered again if it still fits
//!   (same domain, not the conflicting login, not held by another Okta user)
//!   and the owner still holds it; otherwise the first candidate not held by
//!   another Okta user (when the tenant has a directory) that the owner can
//!   claim (`claimed` or `already-yours`) is answered and recorded.
//! - **Directory**: a candidate held by an Okta user other than the matched
//!   user (`data.user.id`) is skipped. Without a directory, nothing changes;
//!   when a lookup fails, the directory is not asked again for this request
//!   and the claim store alone decides (debug context `directory` says why).
//! - **Store failure** (setting `on_store_error`): `fallback` (default) answers
//!   the first hashed-suffix candidate, stateless (different owners get
//!   different logins with odds of 2^-24), flagged `claim: unavailable`;
//!   `error` answers an error summary.
//! - **Shape**: the local part only contains `[a-z0-9.-]`, never starts or
//!   ends with `.` or `-`, never has `..`, and is at most 64 bytes: the names
//!   are cut at the end, the suffix is always kept.
//! - **Answer**: one `user-profile-update` command setting `login` to
//!   `<local>@<domain>`, and the debug context `{"resolver": "login-conflict",
//!   "rule": "<rule>", "claim": "claimed|already-yours|unavailable"}` plus
//!   `"directory": "checked|unavailable|rate-limited|timed-out|denied"` when
//!   the tenant has a directory. `login <claim> by rule <rule>` is logged at
//!   debug level; names and logins never are.
//! - **Events** ([`handle`]): an app-user sync whose debug data reports a
//!   login uniqueness error records the refused login as held by
//!   `okta:<Okta user id>`, so no import is handed it again.
//!
//! The answer depends only on the request, the settings and the claim store:
//! no clock, no randomness, no hash-map order.

use hookbox_sdk::{
    ClaimResult, DirectoryError, Event, EventHandler, Host, Request, Resolver, Response,
    StoreError, SyncEvent, Value,
};

/// The plugin: the resolver (exported as `resolve`) and the event handler
/// (exported as `handle`).
pub struct LoginConflict;

impl Resolver for LoginConflict {
    fn resolve(request: &Request, host: &Host) -> Result<Response, String> {
        resolve(request, host)
    }
}

impl EventHandler for LoginConflict {
    fn handle(event: &Event, host: &Host) -> Result<(), String> {
        handle(event, host)
    }
}

hookbox_sdk::export!(resolver: LoginConflict, handler: LoginConflict);

/// The longest local part an email address may have (RFC 5321).
pub const MAX_LOCAL_PART: usize = 64;

/// Bound on suffix rounds after round 0: with the claim store a round is
/// only skipped when another user holds it, so 16 rounds mean 16 users with
/// the same name *and* colliding 24-bit suffixes, which never happens.
const MAX_ROUNDS: u32 = 16;

/// Identities up to this many bytes are used as claim owners as they are;
/// longer ones (the whole-profile identity) by their 64-bit hash, so that
/// `owner:` + owner stays under the store's 512-byte limit.
const MAX_OWNER_IDENTITY: usize = 480;

/// The prefix of the key that records which login an owner got.
pub const OWNER_KEY_PREFIX: &str = "owner:";

/// The prefix of the owner recorded for a login Okta reported as not unique.
pub const OKTA_OWNER_PREFIX: &str = "okta:";

/// Which rule made a candidate login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `first.middle.last`.
    MiddleName,
    /// `first.last.<suffix>`.
    HashedSuffix,
    /// `base.middle`, base from the conflicting login.
    LoginBaseMiddleName,
    /// `base.<suffix>`, base from the conflicting login.
    LoginBaseHashedSuffix,
}

impl Rule {
    /// The rule's name in the debug context.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::MiddleName => "middle-name",
            Rule::HashedSuffix => "hashed-suffix",
            Rule::LoginBaseMiddleName => "login-base-middle-name",
            Rule::LoginBaseHashedSuffix => "login-base-hashed-suffix",
        }
    }
}

/// What the claim store said about the login answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClaimState {
    Claimed,
    AlreadyYours,
    /// The store failed: the stateless fallback was answered.
    Unavailable,
}

impl ClaimState {
    fn as_str(self) -> &'static str {
        match self {
            ClaimState::Claimed => "claimed",
            ClaimState::AlreadyYours => "already-yours",
            ClaimState::Unavailable => "unavailable",
        }
    }
}

/// What to do when the claim store fails (setting `on_store_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnStoreError {
    /// Answer the stateless hashed-suffix login, flagged `claim: unavailable`.
    Fallback,
    /// Answer an error summary (Okta then keeps its default action).
    Error,
}

struct Settings {
    first: String,
    middle: String,
    last: String,
    unique: String,
    on_store_error: OnStoreError,
}

impl Settings {
    fn read(host: &Host) -> Self {
        // A blank setting can only be a mistake (attribute names are never
        // empty), so it means "use the default".
        let get = |key: &str, default: &str| {
            host.setting(key)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        // Anything but "error" keeps the default: an answer is always better
        // than a typo turning every store outage into failed imports.
        let on_store_error = if get("on_store_error", "fallback").trim() == "error" {
            OnStoreError::Error
        } else {
            OnStoreError::Fallback
        };
        Settings {
            first: get("first_name_attribute", "firstName"),
            middle: get("middle_name_attribute", "middleName"),
            last: get("last_name_attribute", "lastName"),
            unique: get("unique_attribute", "externalId"),
            on_store_error,
        }
    }
}

/// One candidate login: its local part and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The local part (before `@`).
    pub local: String,
    /// The rule, e.g. `middle-name`, `hashed-suffix+rehashed`.
    pub rule: String,
    /// Whether it carries the identity's hashed suffix (only those are
    /// answered when the store is down: they differ between owners).
    pub suffixed: bool,
}

/// The candidate local parts for a request, in the order they are tried:
/// the rule without a suffix first (`first.middle.last`, or `base.middle`),
/// then the hashed suffix of round 0 (`first.last.<s0>`, or `base.<s0>`),
/// then rounds 1 to 16 (`first.last.<s1>`…, rule `…+rehashed`). Candidates
/// equal to the conflicting local part (ignoring ASCII case) are left out.
pub fn candidates(request: &Request, conflict_local: &str, identity: &str) -> Vec<Candidate> {
    // Settings only name attributes here; `Host` is not needed.
    candidates_with(request, conflict_local, identity, &Names::default())
}

/// Attribute names of the names (the settings' values).
struct Names {
    first: String,
    middle: String,
    last: String,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            first: "firstName".into(),
            middle: "middleName".into(),
            last: "lastName".into(),
        }
    }
}

fn candidates_with(
    request: &Request,
    conflict_local: &str,
    identity: &str,
    names: &Names,
) -> Vec<Candidate> {
    let first = name_part(request, &names.first);
    let middle = name_part(request, &names.middle);
    let last = name_part(request, &names.last);

    let (primary, suffix_pieces, suffix_rule) = match (first, last) {
        (Some(first), Some(last)) => (
            middle.map(|m| (Rule::MiddleName, vec![first.clone(), m, last.clone()])),
            vec![first, last],
            Rule::HashedSuffix,
        ),
        _ => {
            let mut base = normalise_login_base(conflict_local);
            if base.is_empty() {
                // Nothing usable anywhere: a fixed word keeps the login
                // readable, the suffix or middle name makes it distinct.
                base = "user".to_owned();
            }
            (
                middle.map(|m| (Rule::LoginBaseMiddleName, vec![base.clone(), m])),
                vec![base],
                Rule::LoginBaseHashedSuffix,
            )
        }
    };

    let mut out = Vec::new();
    if let Some((rule, pieces)) = primary {
        out.push(Candidate {
            local: assemble(&pieces, None),
            rule: rule.as_str().to_owned(),
            suffixed: false,
        });
    }
    for round in 0..=MAX_ROUNDS {
        let mut rule = suffix_rule.as_str().to_owned();
        if round > 0 {
            rule.push_str("+rehashed");
        }
        out.push(Candidate {
            local: assemble(&suffix_pieces, Some(&identity_suffix(identity, round))),
            rule,
            suffixed: true,
        });
    }
    out.retain(|c| !c.local.eq_ignore_ascii_case(conflict_local));
    out
}

/// The claim owner for an identity: `id:<identity>`, or `id#<16 hex digits
/// of its FNV-1a 64-bit hash>` when the identity is over 480 bytes.
pub fn owner_for(identity: &str) -> String {
    if identity.len() <= MAX_OWNER_IDENTITY {
        format!("id:{identity}")
    } else {
        let mut hash = Fnv1a64::new();
        hash.write(identity.as_bytes());
        format!("id#{:016x}", hash.finish())
    }
}

/// The claim key of a login: the login with ASCII letters lowercased (Okta
/// compares logins case-insensitively; ASCII only, so every language folds alike).
pub fn login_key(login: &str) -> String {
    login.to_ascii_lowercase()
}

/// The directory, as one request uses it: after its first failure (or
/// `not-configured`) it is not asked again, so a slow or limited directory
/// costs one lookup per request, not one per candidate.
struct DirectoryUse<'a> {
    host: &'a Host,
    /// `None` while usable; else why not (`not-configured` or the error kind).
    stopped: Option<&'static str>,
    used: bool,
}

impl<'a> DirectoryUse<'a> {
    fn new(host: &'a Host) -> Self {
        DirectoryUse {
            host,
            stopped: None,
            used: false,
        }
    }

    /// Whether an Okta user other than `me` holds `login`. Unknown (no
    /// directory, or it failed) counts as "no": the claim store still decides.
    fn held_by_other(&mut self, login: &str, me: Option<&str>) -> bool {
        if self.stopped.is_some() {
            return false;
        }
        self.used = true;
        match self.host.directory().find_user(login) {
            Ok(Some(id)) => Some(id.as_str()) != me,
            Ok(None) => false,
            Err(DirectoryError::NotConfigured) => {
                self.stopped = Some("not-configured");
                false
            }
            Err(error) => {
                let kind = error.kind();
                self.host.warn(&format!(
                    "directory lookup failed ({kind}): going on with the claim store alone"
                ));
                self.stopped = Some(kind);
                false
            }
        }
    }

    /// The debug-context value: `None` without a directory.
    fn status(&self) -> Option<&'static str> {
        match self.stopped {
            Some("not-configured") => None,
            Some(kind) => Some(kind),
            None if self.used => Some("checked"),
            None => None,
        }
    }
}

/// The whole resolver, as a plain function.
pub fn resolve(request: &Request, host: &Host) -> Result<Response, String> {
    if !request.has_conflict("login") {
        host.debug("no login conflict: nothing to do");
        return Ok(Response::none());
    }
    let Some(login) = request.login() else {
        host.debug("login conflict without a text login in the Okta profile");
        return Err(
            "login-conflict: the Okta user profile has no login to take the domain from".into(),
        );
    };
    let Some((conflict_local, domain)) = login.rsplit_once('@').filter(|(_, d)| !d.is_empty())
    else {
        host.debug("login conflict on a login without a domain");
        return Err("login-conflict: the conflicting login has no domain".into());
    };

    let settings = Settings::read(host);
    let names = Names {
        first: settings.first.clone(),
        middle: settings.middle.clone(),
        last: settings.last.clone(),
    };
    let identity = identity(request, &settings.unique);
    let candidates = candidates_with(request, conflict_local, &identity, &names);
    let owner = owner_for(&identity);
    let mut directory = DirectoryUse::new(host);

    let chosen = match choose(request, host, &candidates, domain, &owner, &mut directory) {
        Ok(Some(chosen)) => chosen,
        Ok(None) => {
            host.debug("every candidate is taken");
            return Err("login-conflict: every candidate login is taken".into());
        }
        Err(error) => {
            let kind = store_error_kind(&error);
            if settings.on_store_error == OnStoreError::Error {
                host.warn(&format!("claim store failed ({kind}): answering an error"));
                return Err(
                    "login-conflict: the claim store is unavailable, so no login could be reserved"
                        .into(),
                );
            }
            host.warn(&format!(
                "claim store failed ({kind}): answering the stateless hashed-suffix login"
            ));
            let fallback = candidates
                .iter()
                .filter(|c| c.suffixed)
                .find(|c| {
                    !directory.held_by_other(&format!("{}@{domain}", c.local), request.user_id())
                })
                .ok_or("login-conflict: every candidate login is taken")?;
            Chosen {
                login: format!("{}@{domain}", fallback.local),
                rule: fallback.rule.clone(),
                claim: ClaimState::Unavailable,
            }
        }
    };

    host.debug(&format!(
        "login {} by rule {}",
        chosen.claim.as_str(),
        chosen.rule
    ));
    let mut response = Response::new()
        .update_user_profile("login", chosen.login)
        .debug("resolver", "login-conflict")
        .debug("rule", chosen.rule)
        .debug("claim", chosen.claim.as_str());
    if let Some(status) = directory.status() {
        response = response.debug("directory", status);
    }
    Ok(response)
}

struct Chosen {
    login: String,
    rule: String,
    claim: ClaimState,
}

fn store_error_kind(error: &StoreError) -> &'static str {
    match error {
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Timeout => "timeout",
        StoreError::Invalid(_) => "invalid",
    }
}

/// Picks the login for `owner`: the one recorded for it earlier if it still
/// fits, else the first candidate that no other Okta user holds and that the
/// store lets this owner claim. `Ok(None)`: every candidate is taken.
fn choose(
    request: &Request,
    host: &Host,
    candidates: &[Candidate],
    domain: &str,
    owner: &str,
    directory: &mut DirectoryUse<'_>,
) -> Result<Option<Chosen>, StoreError> {
    let claims = host.claims();
    let owner_key = format!("{OWNER_KEY_PREFIX}{owner}");
    let me = request.user_id();
    let conflict_local = request
        .login()
        .and_then(|l| l.rsplit_once('@'))
        .map_or("", |(local, _)| local);

    // 1. What this owner got before (a retry, a re-run, a restart), so that
    //    a login released since, earlier in the order, does not change it.
    let recorded = claims.owner_of(&owner_key)?;
    if let Some(previous) = &recorded {
        let fits = previous.rsplit_once('@').is_some_and(|(local, d)| {
            d.eq_ignore_ascii_case(domain) && !local.eq_ignore_ascii_case(conflict_local)
        });
        if fits && !directory.held_by_other(previous, me) {
            let result = claims.claim(&login_key(previous), owner)?;
            if result.is_held() {
                let rule = candidates
                    .iter()
                    .find(|c| format!("{}@{domain}", c.local).eq_ignore_ascii_case(previous))
                    .map_or_else(|| "recorded".to_owned(), |c| c.rule.clone());
                return Ok(Some(Chosen {
                    login: previous.clone(),
                    rule,
                    claim: claim_state(result),
                }));
            }
        }
        host.debug("the login recorded for this user no longer fits: choosing again");
    }

    // 2. The first free candidate.
    for candidate in candidates {
        let login = format!("{}@{domain}", candidate.local);
        if directory.held_by_other(&login, me) {
            continue;
        }
        let result = claims.claim(&login_key(&login), owner)?;
        if !result.is_held() {
            continue;
        }
        record_owner(host, &owner_key, recorded.as_deref(), &login);
        return Ok(Some(Chosen {
            login,
            rule: candidate.rule.clone(),
            claim: claim_state(result),
        }));
    }
    Ok(None)
}

fn claim_state(result: ClaimResult) -> ClaimState {
    match result {
        ClaimResult::AlreadyYours => ClaimState::AlreadyYours,
        _ => ClaimState::Claimed,
    }
}

/// Records `login` as this owner's (key `owner:<owner>`, held by the login),
/// replacing an earlier record. Best effort: the login itself is already
/// claimed, and without the record a re-run still finds it (`already-yours`)
/// unless a login earlier in the order was released meanwhile.
fn record_owner(host: &Host, owner_key: &str, recorded: Option<&str>, login: &str) {
    let claims = host.claims();
    let result = (|| {
        if let Some(previous) = recorded.filter(|p| *p != login) {
            claims.release(owner_key, previous)?;
        }
        claims.claim(owner_key, login)
    })();
    match result {
        Ok(r) if r.is_held() => {}
        Ok(_) => host.warn("the login chosen could not be recorded for this user (record held)"),
        Err(e) => host.warn(&format!(
            "the login chosen could not be recorded for this user ({})",
            store_error_kind(&e)
        )),
    }
}

/// The event handler, as a plain function: on an app-user sync that failed
/// because a login is not unique in Okta, records that login in the claim
/// store as held by the Okta user the sync was about (owner
/// `okta:<Okta user id>`), so that no import is handed it again.
///
/// Other events, and syncs without that error, are ignored (`Ok`). A store
/// failure is an `Err`, so the host retries the event.
pub fn handle(event: &Event, host: &Host) -> Result<(), String> {
    let Event::Sync(sync) = event else {
        host.debug("event ignored: not an app-user sync");
        return Ok(());
    };
    if !is_login_uniqueness_error(sync) {
        host.debug("sync event without a login uniqueness error: nothing to do");
        return Ok(());
    }
    let okta_user = sync
        .okta_user
        .as_ref()
        .map(|u| u.id.as_str())
        .filter(|id| !id.trim().is_empty());
    let app = sync.application.as_ref().map_or("-", |a| a.id.as_str());
    // Ids only: names, logins and the app user's own id (often an email) never reach the log.
    let ids = format!(
        "event {}, Okta user {}, app {app}",
        sync.uuid,
        okta_user.unwrap_or("-")
    );
    let Some(login) = failed_login(sync) else {
        host.warn(&format!(
            "login not unique ({ids}), but the event names no login: nothing recorded"
        ));
        return Ok(());
    };
    let key = login_key(login);
    if key.len() > hookbox_sdk::claims::MAX_LEN || key.starts_with(OWNER_KEY_PREFIX) {
        host.warn(&format!(
            "login not unique ({ids}), but it cannot be a claim key: nothing recorded"
        ));
        return Ok(());
    }
    let owner = match okta_user {
        Some(id) => format!("{OKTA_OWNER_PREFIX}{id}"),
        None => format!("{OKTA_OWNER_PREFIX}event:{}", sync.uuid),
    };
    let failed = |e: StoreError| {
        format!(
            "login-conflict: the claim store failed ({}) while recording a login Okta refused",
            store_error_kind(&e)
        )
    };
    let claims = host.claims();
    match claims.claim(&key, &owner).map_err(failed)? {
        ClaimResult::Claimed => {
            host.info(&format!("login not unique ({ids}): recorded as taken"));
        }
        ClaimResult::AlreadyYours => {
            host.debug(&format!("login not unique ({ids}): already recorded"));
        }
        ClaimResult::Taken => {
            // Held by an import that was handed it (Okta refused it for
            // that user) or by another sync's record. An import's claim is
            // moved to Okta's: the login is held in Okta, so that user's next
            // import must choose again. Another Okta record stays as is.
            match claims.owner_of(&key).map_err(failed)? {
                Some(holder) if !holder.starts_with(OKTA_OWNER_PREFIX) => {
                    claims.release(&key, &holder).map_err(failed)?;
                    claims.claim(&key, &owner).map_err(failed)?;
                    host.info(&format!(
                        "login not unique ({ids}): taken back from the import it was handed to"
                    ));
                }
                _ => host.debug(&format!("login not unique ({ids}): already recorded")),
            }
        }
    }
    Ok(())
}

/// Whether the sync's debug data reports a login uniqueness error:
/// `error_code` starting with `notUnique` (e.g. `notUniqueWithinOrg`) and
/// `error_field` `login`, both ignoring ASCII case.
pub fn is_login_uniqueness_error(sync: &SyncEvent) -> bool {
    let code = sync.debug_value("error_code").unwrap_or("");
    let field = sync.debug_value("error_field").unwrap_or("");
    code.get(..9)
        .is_some_and(|p| p.eq_ignore_ascii_case("notUnique"))
        && field.trim().eq_ignore_ascii_case("login")
}

/// The login Okta refused: the debug-data entry `login` if Okta sent one,
/// else the app user's alternate id (the app-side user name, which the
/// login is mapped from in the usual set-up). `None` if neither is there.
pub fn failed_login(sync: &SyncEvent) -> Option<&str> {
    sync.debug_value("login")
        .or_else(|| {
            sync.app_user
                .as_ref()
                .and_then(|u| u.alternate_id.as_deref())
        })
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

/// The normalised name in attribute `attr`: the app-user profile's if it
/// yields anything, else the Okta user profile's.
fn name_part(request: &Request, attr: &str) -> Option<String> {
    [request.app_user(), request.user()]
        .iter()
        .filter_map(|profile| profile.get_str(attr))
        .map(normalise_name)
        .find(|name| !name.is_empty())
}

/// Normalises one name into a piece of an email local part: `[a-z0-9-]`,
/// no leading, trailing or doubled `-`; empty when nothing can be kept.
pub fn normalise_name(text: &str) -> String {
    let mut out = String::new();
    // A separator is only written once something follows it, which both
    // collapses runs and trims both ends.
    let mut pending_separator = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        let mut buf = [0; 4];
        let piece: &str = if c.is_ascii_alphanumeric() {
            c.encode_utf8(&mut buf)
        } else if is_apostrophe(c) {
            // O'Brien is one name: obrien, not o-brien.
            continue;
        } else if is_separator(c) {
            pending_separator = true;
            continue;
        } else if let Some(ascii) = transliterate(c) {
            ascii
        } else {
            // No faithful ASCII form (other scripts, emoji, combining marks).
            continue;
        };
        if pending_separator && !out.is_empty() {
            out.push('-');
        }
        pending_separator = false;
        out.push_str(piece);
    }
    out
}

/// The conflicting login's local part normalised piece by piece, keeping
/// one `.` between the pieces that are not empty.
pub fn normalise_login_base(local: &str) -> String {
    local
        .split('.')
        .map(normalise_name)
        .filter(|piece| !piece.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

fn is_apostrophe(c: char) -> bool {
    matches!(
        c,
        '\'' | '\u{2019}' | '\u{2018}' | '\u{02BC}' | '`' | '\u{00B4}'
    )
}

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || c.is_ascii_punctuation()
        || matches!(
            c,
            '\u{2010}'..='\u{2015}' | '\u{00B7}' | '\u{2027}' | '\u{2212}'
        )
}

/// The ASCII spelling of a lowercase Latin letter with a diacritic (or a
/// fullwidth Latin letter or digit); `None` for anything else.
fn transliterate(c: char) -> Option<&'static str> {
    const FULLWIDTH: &str = "abcdefghijklmnopqrstuvwxyz";
    const DIGITS: &str = "0123456789";
    let ascii = match c {
        // Latin-1 Supplement.
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
        'æ' => "ae",
        'ç' => "c",
        'è' | 'é' | 'ê' | 'ë' => "e",
        'ì' | 'í' | 'î' | 'ï' => "i",
        'ð' => "d",
        'ñ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => "o",
        'ù' | 'ú' | 'û' | 'ü' => "u",
        'ý' | 'ÿ' => "y",
        'þ' => "th",
        'ß' => "ss",
        // Latin Extended-A.
        'ā' | 'ă' | 'ą' => "a",
        'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' => "d",
        'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĳ' => "ij",
        'ĵ' => "j",
        'ķ' | 'ĸ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ń' | 'ņ' | 'ň' | 'ŉ' | 'ŋ' => "n",
        'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ſ' => "s",
        'ţ' | 'ť' | 'ŧ' => "t",
        'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        // Common Latin Extended-B letters: Romanian, pinyin, Vietnamese, Croatian.
        'ș' => "s",
        'ț' => "t",
        'ǎ' => "a",
        'ǐ' => "i",
        'ǒ' | 'ơ' => "o",
        'ǔ' | 'ǖ' | 'ǘ' | 'ǚ' | 'ǜ' | 'ư' => "u",
        'ƒ' => "f",
        'ǆ' => "dz",
        'ǉ' => "lj",
        'ǌ' => "nj",
        'ə' => "e",
        // Fullwidth forms, as typed with CJK input methods.
        'ａ'..='ｚ' => {
            let i = (u32::from(c) - u32::from('ａ')) as usize;
            return FULLWIDTH.get(i..=i);
        }
        '０'..='９' => {
            let i = (u32::from(c) - u32::from('０')) as usize;
            return DIGITS.get(i..=i);
        }
        _ => return None,
    };
    Some(ascii)
}

/// Joins `pieces` with `.` and appends `.suffix`, cutting the pieces (never
/// the suffix) so the result fits in [`MAX_LOCAL_PART`] bytes.
fn assemble(pieces: &[String], suffix: Option<&str>) -> String {
    let mut head = pieces.join(".");
    let budget = MAX_LOCAL_PART - suffix.map_or(0, |s| s.len() + 1);
    if head.len() > budget {
        let mut cut = budget;
        // Pieces are ASCII, but cutting inside a character must never panic.
        while !head.is_char_boundary(cut) {
            cut -= 1;
        }
        head.truncate(cut);
        let kept = head.trim_end_matches(['.', '-']).len();
        head.truncate(kept);
    }
    if let Some(suffix) = suffix {
        if !head.is_empty() {
            head.push('.');
        }
        head.push_str(suffix);
    }
    head
}

/// What identifies the imported user, as text to hash: the app-user
/// attribute `unique_attr` if it is present, not `null` and not blank (its
/// text, or its JSON text when it is not a string); otherwise the whole
/// app-user profile as a compact JSON object, attributes sorted by name.
pub fn identity(request: &Request, unique_attr: &str) -> String {
    match request.app_user().get(unique_attr) {
        Some(Value::Text(text)) if !text.trim().is_empty() => text.clone(),
        Some(value) if !value.is_null() && value.as_str().is_none() => value.to_json(),
        _ => {
            let mut attributes: Vec<_> = request.app_user().iter().collect();
            // Stable, so duplicate names (which Okta never sends) keep their order.
            attributes.sort_by(|a, b| a.0.cmp(b.0));
            let mut out = String::from("{");
            for (i, (name, value)) in attributes.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(name).to_json());
                out.push(':');
                out.push_str(&value.to_json());
            }
            out.push('}');
            out
        }
    }
}

/// Six lowercase hex digits: the top 24 bits of the FNV-1a 64-bit hash of
/// `identity` (round 0), or of `identity`, a zero byte and the decimal round
/// number (round 1, 2…). The top bits are used because FNV's multiply mixes
/// every input byte into them.
pub fn identity_suffix(identity: &str, round: u32) -> String {
    let mut hash = Fnv1a64::new();
    hash.write(identity.as_bytes());
    if round > 0 {
        hash.write(&[0]);
        hash.write(round.to_string().as_bytes());
    }
    format!("{:06x}", hash.finish() >> 40)
}

/// 64-bit FNV-1a (<http://www.isthe.com/chongo/tech/comp/fnv/>): tiny,
/// stable across platforms and versions, unlike `std`'s hashers.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a64(u64);

impl Fnv1a64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A hash of nothing yet.
    pub fn new() -> Self {
        Fnv1a64(Self::OFFSET_BASIS)
    }

    /// Feeds `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
