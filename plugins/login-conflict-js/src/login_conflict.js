// hookbox's login-conflict resolver, in plain JavaScript (no imports, no wasm).
//
// A line-for-line port of the Rust reference resolver (`plugins/login-conflict`),
// whose README is the specification: when Okta reports a conflict on `login`,
// answer a new login that is valid, claimed in hookbox's claim store (and free
// in the tenant's Okta directory when it has one), and the same for the same
// user on a retry, a re-run or a restart; and, as an event handler, record the
// logins Okta refused as not unique.
//
// This module imports nothing, so `node --test` runs it natively;
// `resolver.js` is the component glue.
//
// Data shapes are the ones componentize-js uses for the WIT types, so the glue
// passes them through unchanged:
// - a value is `{ tag, val }`, tag one of `null` (no val), `boolean`,
//   `integer` (a BigInt: WIT s64), `float` (a number), `text`, `array`
//   (a list of scalars, same shape), `json` (JSON text);
// - a profile is a list of `{ name, value }`;
// - the request has `appUserProfile`, `userProfile`, `userId`, `context.conflicts`;
// - the host is `{ configGet(key) -> string | undefined, log(level, message) }`,
//   levels `trace`, `debug`, `info`, `warn`, `error`, plus the claim store
//   `claim(key, owner) -> 'claimed' | 'already-yours' | 'taken'`,
//   `ownerOf(key) -> string | undefined`, `release(key, owner) -> boolean`
//   (each throwing `StoreError(kind)`) and the directory
//   `findUser(login) -> string | undefined` (throwing `DirectoryError(kind)`,
//   kind `not-configured` without a directory);
// - an event is the WIT `event` variant: `{ tag: 'sync', val }` or `{ tag: 'other', val }`.
//
// The answer depends only on the request, the settings and the claim store:
// no clock, no randomness, no hash-map order.
//
// Performance: inside the component this runs in SpiderMonkey's interpreter
// (no JIT), where every bytecode op and every call costs tens to hundreds of
// wasm instructions. So the per-request path avoids what is cheap under a JIT
// but not here: BigInt arithmetic, `for...of` (each step calls the iterator's
// `next`), one-character strings and Set/Map look-ups per character, regular
// expressions and callbacks. Strings are walked by UTF-16 code unit with
// `charCodeAt`, tables are built once at module load (which componentize-js
// runs at build time, into the snapshot), and runs of kept characters are
// copied with one `slice`. Each such place says why its shortcut gives the
// same result as the straightforward code.

/** The longest local part an email address may have (RFC 5321). */
export const MAX_LOCAL_PART = 64;

/** Suffix rounds after round 0 (a round is skipped only when another user holds it). */
const MAX_ROUNDS = 16;

/** Identities up to this many UTF-8 bytes are claim owners as they are; longer ones by hash. */
const MAX_OWNER_IDENTITY = 480;

/** The longest key or owner the claim store accepts, in bytes. */
export const MAX_KEY = 512;

export const OWNER_KEY_PREFIX = 'owner:';
export const OKTA_OWNER_PREFIX = 'okta:';

/** The plugin's error: its message becomes Okta's `errorSummary`. */
export class ResolveError extends Error {}

/** A claim-store call failed; `kind` is `unavailable`, `timeout` or `invalid`. */
export class StoreError extends Error {
  constructor(kind) {
    super(kind);
    this.kind = kind;
  }
}

/** A directory lookup failed; `kind` as in the WIT (`not-configured`, `rate-limited`…). */
export class DirectoryError extends Error {
  constructor(kind) {
    super(kind);
    this.kind = kind;
  }
}

/** The value of the first attribute `name`, or undefined. */
export function get(profile, name) {
  // An index loop, not for...of: no iterator calls in the interpreter.
  for (let i = 0; i < profile.length; i++) {
    if (profile[i].name === name) return profile[i].value;
  }
  return undefined;
}

/** The text of attribute `name`; undefined when absent or not a JSON string. */
export function getStr(profile, name) {
  const value = get(profile, name);
  return value !== undefined && value.tag === 'text' ? value.val : undefined;
}

/**
 * Rust's `char::is_whitespace` (the Unicode White_Space property) of a UTF-16
 * code unit. (JavaScript's `trim` and `\s` differ: they accept U+FEFF and miss
 * U+0085.) Every White_Space character is in the BMP, so a surrogate is never one.
 */
export function isWhiteSpace(code) {
  if (code <= 0x20) return code === 0x20 || (code >= 0x09 && code <= 0x0d);
  if (code < 0x85) return false;
  return (
    code === 0x85 ||
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000
  );
}

const ASCII_PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
const ALNUM = new Set('abcdefghijklmnopqrstuvwxyz0123456789');
const APOSTROPHES = new Set("'\u2019\u2018\u02bc`\u00b4");
const EXTRA_SEPARATORS = new Set('\u2010\u2011\u2012\u2013\u2014\u2015\u00b7\u2027\u2212');

/** Rust's `text.trim().is_empty()`. */
export function isBlank(text) {
  for (let i = 0; i < text.length; i++) {
    if (!isWhiteSpace(text.charCodeAt(i))) return false;
  }
  return true;
}

function buildTable() {
  const table = new Map();
  const groups = [
    // Latin-1 Supplement.
    ['àáâãäå', 'a'], ['æ', 'ae'], ['ç', 'c'], ['èéêë', 'e'], ['ìíîï', 'i'],
    ['ð', 'd'], ['ñ', 'n'], ['òóôõöø', 'o'], ['ùúûü', 'u'], ['ýÿ', 'y'],
    ['þ', 'th'], ['ß', 'ss'],
    // Latin Extended-A.
    ['āăą', 'a'], ['ćĉċč', 'c'], ['ďđ', 'd'], ['ēĕėęě', 'e'], ['ĝğġģ', 'g'],
    ['ĥħ', 'h'], ['ĩīĭįı', 'i'], ['ĳ', 'ij'], ['ĵ', 'j'], ['ķĸ', 'k'],
    ['ĺļľŀł', 'l'], ['ńņňŉŋ', 'n'], ['ōŏő', 'o'], ['œ', 'oe'], ['ŕŗř', 'r'],
    ['śŝşšſ', 's'], ['ţťŧ', 't'], ['ũūŭůűų', 'u'], ['ŵ', 'w'], ['ŷ', 'y'],
    ['źżž', 'z'],
    // Common Latin Extended-B letters: Romanian, pinyin, Vietnamese, Croatian.
    ['ș', 's'], ['ț', 't'], ['ǎ', 'a'], ['ǐ', 'i'], ['ǒơ', 'o'], ['ǔǖǘǚǜư', 'u'],
    ['ƒ', 'f'], ['ǆ', 'dz'], ['ǉ', 'lj'], ['ǌ', 'nj'], ['ə', 'e'],
  ];
  for (const [letters, ascii] of groups) {
    for (const letter of letters) table.set(letter, ascii);
  }
  // Fullwidth forms, as typed with CJK input methods.
  for (let i = 0; i < 26; i++) table.set(String.fromCodePoint(0xff41 + i), String.fromCharCode(97 + i));
  for (let i = 0; i < 10; i++) table.set(String.fromCodePoint(0xff10 + i), String.fromCharCode(48 + i));
  return table;
}

/** The ASCII spelling of lowercase Latin letters with diacritics (and fullwidth Latin). */
export const TRANSLITERATION = buildTable();

// What normaliseName does with an ASCII character (after lowercasing), by code.
const KEEP = 0; // [a-z0-9]: copied
const SEPARATOR = 1; // whitespace, punctuation: one `-` before the next piece
const DROP = 2; // apostrophes (O'Brien is one name: obrien, not o-brien), controls
const ALL_KEPT = /^[a-z0-9]*$/;
const ASCII_CLASS = new Uint8Array(0x80);
for (let code = 0; code < 0x80; code++) {
  const c = String.fromCharCode(code);
  // In this order: ' and ` are punctuation, but apostrophes first.
  if (ALNUM.has(c)) ASCII_CLASS[code] = KEEP;
  else if (APOSTROPHES.has(c)) ASCII_CLASS[code] = DROP;
  else if (isWhiteSpace(code) || ASCII_PUNCTUATION.has(c)) ASCII_CLASS[code] = SEPARATOR;
  else ASCII_CLASS[code] = DROP;
}

/**
 * One name as a piece of an email local part: `[a-z0-9-]`, no leading,
 * trailing or doubled `-`; empty when nothing can be kept.
 */
export function normaliseName(text) {
  // Rust lowercases code point by code point (`char::to_lowercase`). One
  // `toLowerCase` of the whole string gives the same code points, except that
  // a capital sigma may become final sigma `ς` instead of `σ` (the only
  // context-dependent mapping): a Greek letter, dropped either way.
  const lower = text.toLowerCase();
  // Most names are one piece of [a-z0-9] once lowercased: nothing else to do.
  // (One regular expression test runs natively; the loop below does not.)
  if (ALL_KEPT.test(lower)) return lower;
  let out = '';
  let pendingSeparator = false;
  // Start of the current run of [a-z0-9] in `lower`, or -1: a run is copied
  // with one slice rather than character by character.
  let run = -1;
  for (let i = 0; i < lower.length; i++) {
    const code = lower.charCodeAt(i);
    if (code < 0x80 && ASCII_CLASS[code] === KEEP) {
      if (run < 0) {
        // A separator is only written once something follows it, which both
        // collapses runs of separators and trims both ends.
        if (pendingSeparator && out.length > 0) out += '-';
        pendingSeparator = false;
        run = i;
      }
      continue;
    }
    if (run >= 0) {
      out += lower.slice(run, i);
      run = -1;
    }
    if (code < 0x80) {
      if (ASCII_CLASS[code] === SEPARATOR) pendingSeparator = true;
      continue;
    }
    // Not ASCII. By code unit: no character above U+FFFF is an apostrophe, a
    // separator or in the table, so both halves of a surrogate pair are
    // dropped one by one, as the whole character would be.
    const c = lower[i];
    if (APOSTROPHES.has(c)) continue;
    if (isWhiteSpace(code) || EXTRA_SEPARATORS.has(c)) {
      pendingSeparator = true;
      continue;
    }
    const piece = TRANSLITERATION.get(c);
    if (piece === undefined) continue; // Other scripts, emoji, combining marks.
    if (pendingSeparator && out.length > 0) out += '-';
    pendingSeparator = false;
    out += piece;
  }
  if (run >= 0) out += lower.slice(run);
  return out;
}

/** The conflicting login's local part normalised piece by piece between its dots. */
export function normaliseLoginBase(local) {
  return local
    .split('.')
    .map(normaliseName)
    .filter((piece) => piece.length > 0)
    .join('.');
}

/**
 * Rust's `a.eq_ignore_ascii_case(b)`: only ASCII letters fold. Non-ASCII code
 * units compare as they are; equal UTF-16 is equal UTF-8.
 */
export function equalIgnoringAsciiCase(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x >= 0x41 && x <= 0x5a) x += 0x20;
    if (y >= 0x41 && y <= 0x5a) y += 0x20;
    if (x !== y) return false;
  }
  return true;
}

/**
 * Joins `pieces` with `.` and appends `.suffix`, cutting the pieces (never the
 * suffix) so the result fits in MAX_LOCAL_PART bytes. Pieces are ASCII.
 */
export function assemble(pieces, suffix) {
  let head = pieces.join('.');
  const budget = MAX_LOCAL_PART - (suffix === undefined ? 0 : suffix.length + 1);
  if (head.length > budget) {
    head = head.slice(0, budget).replace(/[.-]+$/, '');
  }
  if (suffix !== undefined) {
    if (head.length > 0) head += '.';
    head += suffix;
  }
  return head;
}

/** How serde_json escapes a character in a string, or undefined if it keeps it. */
function jsonEscape(code) {
  switch (code) {
    case 0x22:
      return '\\"';
    case 0x5c:
      return '\\\\';
    case 0x0a:
      return '\\n';
    case 0x0d:
      return '\\r';
    case 0x09:
      return '\\t';
    case 0x08:
      return '\\b';
    case 0x0c:
      return '\\f';
    default:
      return code < 0x20 ? '\\u' + code.toString(16).padStart(4, '0') : undefined;
  }
}

const NEEDS_ESCAPE = /["\\\x00-\x1f]/;

/** `text` as a JSON string, escaped as serde_json does. */
function jsonString(text) {
  // Usually nothing to escape: one regular expression test (native) says so.
  if (!NEEDS_ESCAPE.test(text)) return '"' + text + '"';
  // Only ASCII is ever escaped, so code units will do; the text between two
  // escapes is copied with one slice.
  let out = '"';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x20 && code !== 0x22 && code !== 0x5c) continue;
    out += text.slice(from, i) + jsonEscape(code);
    from = i + 1;
  }
  return out + text.slice(from) + '"';
}

/**
 * An f64 as Rust's `Display` writes it: shortest round-trip digits, never an
 * exponent, no `.0` for integral values; non-finite → `null`.
 */
export function rustFloat(f) {
  if (!Number.isFinite(f)) return 'null';
  if (f === 0) return Object.is(f, -0) ? '-0' : '0';
  let s = String(f); // shortest round-trip digits, like Rust's
  let sign = '';
  if (s.startsWith('-')) {
    sign = '-';
    s = s.slice(1);
  }
  const [mantissa, exp = '0'] = s.split('e');
  const [whole, frac = ''] = mantissa.split('.');
  const all = whole + frac;
  const digits = all.replace(/^0+/, '').replace(/0+$/, '');
  // Digits before the decimal point, once leading zeros are gone.
  const point = whole.length + Number(exp) - (all.length - all.replace(/^0+/, '').length);
  if (point <= 0) return sign + '0.' + '0'.repeat(-point) + digits;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return sign + digits.slice(0, point) + '.' + digits.slice(point);
}

/** A value as compact JSON text, exactly as the Rust SDK's `Value::to_json`. */
export function toJson(value) {
  switch (value.tag) {
    case 'null':
      return 'null';
    case 'boolean':
      return value.val ? 'true' : 'false';
    case 'integer':
      return String(value.val);
    case 'float':
      return rustFloat(value.val);
    case 'text':
      return jsonString(value.val);
    case 'array':
      return '[' + value.val.map(toJson).join(',') + ']';
    case 'json':
      return value.val;
    default:
      throw new Error(`unknown value tag ${value.tag}`);
  }
}

/** Compares strings by code point, as Rust compares `str` (UTF-16 order differs). */
export function compareCodePoints(a, b) {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  // One is a prefix of the other (in code units, hence in code points).
  if (i === n) return a.length - b.length;
  // UTF-16 order is not code-point order (U+E000..U+FFFF sort above
  // surrogates), so compare code points. If the same high surrogate precedes
  // i in both, it starts the first code point that may differ (a pair in one
  // string at least, unless it is a lone surrogate in both).
  const before = i > 0 ? a.charCodeAt(i - 1) : 0;
  if (before >= 0xd800 && before <= 0xdbff) {
    const x = a.codePointAt(i - 1);
    const y = b.codePointAt(i - 1);
    if (x !== y) return x - y;
  }
  return a.codePointAt(i) - b.codePointAt(i);
}

/** What identifies the imported user, as text to hash. */
export function identity(request, uniqueAttr) {
  const value = get(request.appUserProfile, uniqueAttr);
  if (value !== undefined) {
    if (value.tag === 'text' && !isBlank(value.val)) return value.val;
    if (value.tag !== 'null' && value.tag !== 'text') return toJson(value);
  }
  // Array.prototype.sort is stable.
  // slice, not [...spread]: no iterator calls.
  const attributes = request.appUserProfile.slice().sort((a, b) => compareCodePoints(a.name, b.name));
  return '{' + attributes.map((a) => jsonString(a.name) + ':' + toJson(a.value)).join(',') + '}';
}

// 64-bit FNV-1a (http://www.isthe.com/chongo/tech/comp/fnv/) without BigInt
// (every BigInt op allocates, and is slow in the interpreter): the hash is
// kept as two 32-bit halves. The prime is 2^40 + 0x1b3, so modulo 2^64
//   h * prime = (h << 40) + h * 0x1b3
// and, with h = hi * 2^32 + lo:
//   lo' = (lo * 0x1b3) mod 2^32
//   hi' = (hi * 0x1b3 + (lo << 8) + floor(lo * 0x1b3 / 2^32)) mod 2^32.
// Every intermediate is below 2^42, so plain double arithmetic is exact and
// `| 0` takes it modulo 2^32 at the end (no Math.imul: a call costs more here).
const FNV_OFFSET_HI = 0xcbf29ce4;
const FNV_OFFSET_LO = 0x84222325;
const FNV_PRIME_LOW = 0x1b3;
const TWO_32 = 0x100000000;
const UTF8 = new TextEncoder();

/**
 * 64-bit FNV-1a of the UTF-8 bytes of `text` (as Rust's `str::as_bytes`), as
 * its two unsigned 32-bit halves `{ hi, lo }`. (A lone surrogate, which no
 * Rust string and so no WIT string can hold, is hashed as U+FFFD.)
 */
export function fnv1a64(text) {
  // One native call for the whole UTF-8 encoding, rather than work per character.
  const bytes = UTF8.encode(text);
  let hi = FNV_OFFSET_HI | 0;
  let lo = FNV_OFFSET_LO; // may hold a product up to 2^41: only its low 32 bits count
  const n = bytes.length; // a getter call on a typed array: not once per byte
  for (let i = 0; i < n; i++) {
    // `^` and `<<` take their operands modulo 2^32; `>>> 0` makes x unsigned.
    const x = (lo ^ bytes[i]) >>> 0;
    const product = x * FNV_PRIME_LOW;
    hi = (hi * FNV_PRIME_LOW + (x << 8) + ((product / TWO_32) | 0)) | 0;
    lo = product;
  }
  return { hi: hi >>> 0, lo: lo >>> 0 };
}

/** Six hex digits: the top 24 bits of FNV-1a(identity [+ 0 byte + round]). */
export function identitySuffix(identityText, round) {
  const { hi } = fnv1a64(round > 0 ? `${identityText}\0${round}` : identityText);
  return (hi >>> 8).toString(16).padStart(6, '0');
}

function setting(host, key, fallback) {
  // A blank setting can only be a mistake: it means "use the default".
  const value = host.configGet(key);
  return value === undefined || value === null || isBlank(value) ? fallback : value;
}

/** The normalised name in attribute `attr` of `profile`, or undefined. */
function nameIn(profile, attr) {
  const text = getStr(profile, attr);
  if (text === undefined) return undefined;
  const name = normaliseName(text);
  return name.length > 0 ? name : undefined;
}

function namePart(request, attr) {
  return nameIn(request.appUserProfile, attr) ?? nameIn(request.userProfile, attr);
}

/** Rust's `str::trim`: White_Space (Rust's set) stripped from both ends. */
function rustTrim(text) {
  let start = 0;
  let end = text.length;
  while (start < end && isWhiteSpace(text.charCodeAt(start))) start++;
  while (end > start && isWhiteSpace(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

/** ASCII letters lowercased, nothing else (Rust's `to_ascii_lowercase`). */
function asciiLower(text) {
  return text.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** The UTF-8 length of `text`. */
function utf8Length(text) {
  return UTF8.encode(text).length;
}

/**
 * The candidates in the order tried, `{ local, rule, suffixed }` (see the Rust
 * reference): the rule without a suffix, then the round-0 hashed suffix, then
 * rounds 1 to 16; those equal to the conflicting local part are left out.
 */
export function candidates(request, conflictLocal, ident, names) {
  const first = namePart(request, names.first);
  const middle = namePart(request, names.middle);
  const last = namePart(request, names.last);
  let primary;
  let suffixPieces;
  let suffixRule;
  if (first !== undefined && last !== undefined) {
    if (middle !== undefined) primary = ['middle-name', [first, middle, last]];
    suffixPieces = [first, last];
    suffixRule = 'hashed-suffix';
  } else {
    // Nothing usable anywhere: a fixed word keeps the login readable.
    const base = normaliseLoginBase(conflictLocal) || 'user';
    if (middle !== undefined) primary = ['login-base-middle-name', [base, middle]];
    suffixPieces = [base];
    suffixRule = 'login-base-hashed-suffix';
  }
  const out = [];
  if (primary !== undefined) {
    out.push({ local: assemble(primary[1], undefined), rule: primary[0], suffixed: false });
  }
  for (let round = 0; round <= MAX_ROUNDS; round++) {
    out.push({
      local: assemble(suffixPieces, identitySuffix(ident, round)),
      rule: round > 0 ? `${suffixRule}+rehashed` : suffixRule,
      suffixed: true,
    });
  }
  return out.filter((c) => !equalIgnoringAsciiCase(c.local, conflictLocal));
}

/** `id:<identity>`, or `id#<16 hex of FNV-1a 64>` over 480 UTF-8 bytes. */
export function ownerFor(ident) {
  if (utf8Length(ident) <= MAX_OWNER_IDENTITY) return `id:${ident}`;
  const { hi, lo } = fnv1a64(ident);
  return `id#${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`;
}

/** The claim key of a login: ASCII letters lowercased. */
export function loginKey(login) {
  return asciiLower(login);
}

/** The directory as one request uses it: not asked again after a failure. */
class DirectoryUse {
  constructor(host) {
    this.host = host;
    this.stopped = undefined;
    this.used = false;
  }

  heldByOther(login, me) {
    if (this.stopped !== undefined) return false;
    this.used = true;
    let found;
    try {
      found = this.host.findUser(login);
    } catch (e) {
      if (!(e instanceof DirectoryError)) throw e;
      if (e.kind !== 'not-configured') {
        this.host.log(
          'warn',
          `directory lookup failed (${e.kind}): going on with the claim store alone`,
        );
      }
      this.stopped = e.kind;
      return false;
    }
    return found !== undefined && found !== null && found !== me;
  }

  status() {
    if (this.stopped === 'not-configured') return undefined;
    if (this.stopped !== undefined) return this.stopped;
    return this.used ? 'checked' : undefined;
  }
}

const held = (result) => result === 'claimed' || result === 'already-yours';

function choose(request, host, cands, domain, owner, directory, conflictLocal) {
  const ownerKey = OWNER_KEY_PREFIX + owner;
  const me = request.userId ?? undefined;
  const recorded = host.ownerOf(ownerKey) ?? undefined;
  if (recorded !== undefined) {
    const at = recorded.lastIndexOf('@');
    const fits =
      at >= 0 &&
      equalIgnoringAsciiCase(recorded.slice(at + 1), domain) &&
      !equalIgnoringAsciiCase(recorded.slice(0, at), conflictLocal);
    if (fits && !directory.heldByOther(recorded, me)) {
      const result = host.claim(loginKey(recorded), owner);
      if (held(result)) {
        const match = cands.find((c) => equalIgnoringAsciiCase(`${c.local}@${domain}`, recorded));
        return { login: recorded, rule: match ? match.rule : 'recorded', claim: result };
      }
    }
    host.log('debug', 'the login recorded for this user no longer fits: choosing again');
  }
  for (const c of cands) {
    const login = `${c.local}@${domain}`;
    if (directory.heldByOther(login, me)) continue;
    const result = host.claim(loginKey(login), owner);
    if (!held(result)) continue;
    recordOwner(host, ownerKey, recorded, login);
    return { login, rule: c.rule, claim: result };
  }
  return undefined;
}

function recordOwner(host, ownerKey, recorded, login) {
  let result;
  try {
    if (recorded !== undefined && recorded !== login) host.release(ownerKey, recorded);
    result = host.claim(ownerKey, login);
  } catch (e) {
    if (!(e instanceof StoreError)) throw e;
    host.log('warn', `the login chosen could not be recorded for this user (${e.kind})`);
    return;
  }
  if (!held(result)) {
    host.log('warn', 'the login chosen could not be recorded for this user (record held)');
  }
}

/**
 * The whole resolver. Returns the WIT `response` record
 * (`{ commands, debugContext }`), or throws ResolveError(summary).
 */
export function resolve(request, host) {
  if (!request.context.conflicts.includes('login')) {
    host.log('debug', 'no login conflict: nothing to do');
    return { commands: [], debugContext: [] };
  }
  const login = getStr(request.userProfile, 'login');
  if (login === undefined) {
    host.log('debug', 'login conflict without a text login in the Okta profile');
    throw new ResolveError(
      'login-conflict: the Okta user profile has no login to take the domain from',
    );
  }
  const at = login.lastIndexOf('@');
  if (at < 0 || at === login.length - 1) {
    host.log('debug', 'login conflict on a login without a domain');
    throw new ResolveError('login-conflict: the conflicting login has no domain');
  }
  const conflictLocal = login.slice(0, at);
  const domain = login.slice(at + 1);

  const names = {
    first: setting(host, 'first_name_attribute', 'firstName'),
    middle: setting(host, 'middle_name_attribute', 'middleName'),
    last: setting(host, 'last_name_attribute', 'lastName'),
  };
  const ident = identity(request, setting(host, 'unique_attribute', 'externalId'));
  const onStoreError = rustTrim(setting(host, 'on_store_error', 'fallback'));
  const cands = candidates(request, conflictLocal, ident, names);
  const owner = ownerFor(ident);
  const directory = new DirectoryUse(host);

  let chosen;
  try {
    chosen = choose(request, host, cands, domain, owner, directory, conflictLocal);
    if (chosen === undefined) {
      host.log('debug', 'every candidate is taken');
      throw new ResolveError('login-conflict: every candidate login is taken');
    }
  } catch (e) {
    if (!(e instanceof StoreError)) throw e;
    if (onStoreError === 'error') {
      host.log('warn', `claim store failed (${e.kind}): answering an error`);
      throw new ResolveError(
        'login-conflict: the claim store is unavailable, so no login could be reserved',
      );
    }
    host.log(
      'warn',
      `claim store failed (${e.kind}): answering the stateless hashed-suffix login`,
    );
    const me = request.userId ?? undefined;
    const fallback = cands.find(
      (c) => c.suffixed && !directory.heldByOther(`${c.local}@${domain}`, me),
    );
    if (fallback === undefined) {
      throw new ResolveError('login-conflict: every candidate login is taken');
    }
    chosen = { login: `${fallback.local}@${domain}`, rule: fallback.rule, claim: 'unavailable' };
  }

  host.log('debug', `login ${chosen.claim} by rule ${chosen.rule}`);
  const debugContext = [
    ['resolver', 'login-conflict'],
    ['rule', chosen.rule],
    ['claim', chosen.claim],
  ];
  const status = directory.status();
  if (status !== undefined) debugContext.push(['directory', status]);
  return {
    commands: [
      {
        tag: 'user-profile-update',
        val: [{ name: 'login', value: { tag: 'text', val: chosen.login } }],
      },
    ],
    debugContext,
  };
}

function debugValue(data, key) {
  const entry = data.find(([k]) => k === key);
  return entry === undefined ? undefined : entry[1];
}

/** `error_code` starting with `notUnique` and `error_field` `login` (ASCII case ignored). */
export function isLoginUniquenessError(sync) {
  const code = debugValue(sync.debugData, 'error_code') ?? '';
  const field = debugValue(sync.debugData, 'error_field') ?? '';
  return (
    code.length >= 9 &&
    equalIgnoringAsciiCase(code.slice(0, 9), 'notUnique') &&
    equalIgnoringAsciiCase(rustTrim(field), 'login')
  );
}

/** The debug-data entry `login`, else the app user's alternate id; undefined if neither. */
export function failedLogin(sync) {
  const login = debugValue(sync.debugData, 'login') ?? sync.appUser?.alternateId ?? undefined;
  if (login === undefined || login === null) return undefined;
  const trimmed = rustTrim(login);
  return trimmed.length > 0 ? trimmed : undefined;
}

/**
 * The event handler: records a login Okta refused as not unique (see the Rust
 * reference). Throws ResolveError(reason) when the claim store fails.
 */
export function handle(event, host) {
  if (event.tag !== 'sync') {
    host.log('debug', 'event ignored: not an app-user sync');
    return;
  }
  const sync = event.val;
  if (!isLoginUniquenessError(sync)) {
    host.log('debug', 'sync event without a login uniqueness error: nothing to do');
    return;
  }
  let oktaUser = sync.oktaUser?.id;
  if (oktaUser !== undefined && isBlank(oktaUser)) oktaUser = undefined;
  const app = sync.application?.id ?? '-';
  const ids = `event ${sync.uuid}, Okta user ${oktaUser ?? '-'}, app ${app}`;
  const login = failedLogin(sync);
  if (login === undefined) {
    host.log('warn', `login not unique (${ids}), but the event names no login: nothing recorded`);
    return;
  }
  const key = loginKey(login);
  if (utf8Length(key) > MAX_KEY || key.startsWith(OWNER_KEY_PREFIX)) {
    host.log('warn', `login not unique (${ids}), but it cannot be a claim key: nothing recorded`);
    return;
  }
  const owner =
    oktaUser !== undefined ? OKTA_OWNER_PREFIX + oktaUser : `${OKTA_OWNER_PREFIX}event:${sync.uuid}`;
  try {
    const result = host.claim(key, owner);
    if (result === 'claimed') {
      host.log('info', `login not unique (${ids}): recorded as taken`);
    } else if (result === 'already-yours') {
      host.log('debug', `login not unique (${ids}): already recorded`);
    } else {
      const holder = host.ownerOf(key) ?? undefined;
      if (holder !== undefined && !holder.startsWith(OKTA_OWNER_PREFIX)) {
        host.release(key, holder);
        host.claim(key, owner);
        host.log('info', `login not unique (${ids}): taken back from the import it was handed to`);
      } else {
        host.log('debug', `login not unique (${ids}): already recorded`);
      }
    }
  } catch (e) {
    if (!(e instanceof StoreError)) throw e;
    throw new ResolveError(
      `login-conflict: the claim store failed (${e.kind}) while recording a login Okta refused`,
    );
  }
}
