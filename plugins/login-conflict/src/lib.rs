//! hookbox's reference resolver: a unique login when Okta reports a login conflict.
//!
//! Okta's import guide (only ever published as pseudo-code) infixes the
//! middle name when an imported user's login collides with an existing Okta
//! user: `george.smith@example.com` becomes `george.alexander.smith@example.com`.
//! This plugin does that, and also decides the cases the guide is silent on,
//! so that the login it answers is valid, unique and the same on Okta's retry.
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
//! - **The new local part**, by the first rule that applies:
//!   1. first, middle and last name: `first.middle.last` (rule `middle-name`);
//!   2. first and last name, no middle name: `first.last.<suffix>` (rule
//!      `hashed-suffix`);
//!   3. first or last name missing: the conflicting login's local part,
//!      normalised piece by piece between its dots (or `user` if nothing is
//!      left of it), as the base: `base.middle` (rule `login-base-middle-name`)
//!      or `base.<suffix>` (rule `login-base-hashed-suffix`).
//! - **Suffix** ([`identity_suffix`]): six lowercase hex digits, the top 24
//!   bits of the 64-bit FNV-1a hash of the user's identity: the text of the
//!   app-user attribute named by setting `unique_attribute` (default
//!   `externalId`), or its JSON text if it is not a string, when it is present,
//!   not `null` and not blank; otherwise the app-user profile as a compact JSON
//!   object with its attributes sorted by name. The same row always gets the
//!   same suffix (Okta retries an event with the same data); two rows "John
//!   Smith" with different identities get different ones.
//! - **Different from the conflicting login**: if the candidate equals the
//!   conflicting login (ignoring ASCII case), a suffix of round 1 (the hash of
//!   the identity, a zero byte and `1`) is appended instead, then round 2…
//!   (`+rehashed` is added to the rule).
//! - **Shape**: the local part only contains `[a-z0-9.-]`, never starts or
//!   ends with `.` or `-`, never has `..`, and is at most 64 bytes: the names
//!   are cut at the end, the suffix is always kept.
//! - **Answer**: one `user-profile-update` command setting `login` to
//!   `<local>@<domain>`, and the debug context
//!   `{"resolver": "login-conflict", "rule": "<rule>"}`. The rule is also
//!   logged at debug level; names and logins never are.
//!
//! The result is deterministic: no clock, no randomness, no hash-map order.

use hookbox_sdk::{Host, Request, Resolver, Response, Value};

/// The resolver; exported as the component's `resolve`.
pub struct LoginConflict;

impl Resolver for LoginConflict {
    fn resolve(request: &Request, host: &Host) -> Result<Response, String> {
        resolve(request, host)
    }
}

hookbox_sdk::export!(LoginConflict);

/// The longest local part an email address may have (RFC 5321).
pub const MAX_LOCAL_PART: usize = 64;

/// Bound on suffix rounds: each round can only equal the one conflicting
/// login by a 2^-24 chance, so more than a couple never happens in practice.
const MAX_ROUNDS: u32 = 16;

/// Which rule decided the new login.
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

    fn log_message(self) -> &'static str {
        match self {
            Rule::MiddleName => "middle name infixed",
            Rule::HashedSuffix => "no middle name: hashed suffix",
            Rule::LoginBaseMiddleName => "first or last name missing: login base and middle name",
            Rule::LoginBaseHashedSuffix => {
                "first or last name missing, no middle name: login base and hashed suffix"
            }
        }
    }
}

struct Settings {
    first: String,
    middle: String,
    last: String,
    unique: String,
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
        Settings {
            first: get("first_name_attribute", "firstName"),
            middle: get("middle_name_attribute", "middleName"),
            last: get("last_name_attribute", "lastName"),
            unique: get("unique_attribute", "externalId"),
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
    let first = name_part(request, &settings.first);
    let middle = name_part(request, &settings.middle);
    let last = name_part(request, &settings.last);

    let (rule, pieces) = match (first, last) {
        (Some(first), Some(last)) => match middle {
            Some(middle) => (Rule::MiddleName, vec![first, middle, last]),
            None => (Rule::HashedSuffix, vec![first, last]),
        },
        _ => {
            let mut base = normalise_login_base(conflict_local);
            if base.is_empty() {
                // Nothing usable anywhere: a fixed word keeps the login
                // readable, the suffix or middle name makes it distinct.
                base = "user".to_owned();
            }
            match middle {
                Some(middle) => (Rule::LoginBaseMiddleName, vec![base, middle]),
                None => (Rule::LoginBaseHashedSuffix, vec![base]),
            }
        }
    };
    host.debug(rule.log_message());

    let identity = identity(request, &settings.unique);
    let needs_suffix = matches!(rule, Rule::HashedSuffix | Rule::LoginBaseHashedSuffix);
    let mut local = assemble(
        &pieces,
        needs_suffix
            .then(|| identity_suffix(&identity, 0))
            .as_deref(),
    );
    let mut round = 0;
    while local.eq_ignore_ascii_case(conflict_local) {
        round += 1;
        if round > MAX_ROUNDS {
            return Err(
                "login-conflict: no login different from the conflicting one could be derived"
                    .into(),
            );
        }
        local = assemble(&pieces, Some(&identity_suffix(&identity, round)));
    }
    let mut rule_name = rule.as_str().to_owned();
    if round > 0 {
        host.debug("candidate equal to the conflicting login: suffix rehashed");
        rule_name.push_str("+rehashed");
    }

    Ok(Response::new()
        .update_user_profile("login", format!("{local}@{domain}"))
        .debug("resolver", "login-conflict")
        .debug("rule", rule_name))
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
