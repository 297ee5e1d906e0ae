// hookbox's login-conflict resolver, in plain JavaScript (no imports, no wasm).
//
// A line-for-line port of the Rust reference resolver (`plugins/login-conflict`),
// whose README is the specification: when Okta reports a conflict on `login`,
// answer a new login that is valid, unique and the same on Okta's retry.
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
// - the request has `appUserProfile`, `userProfile`, `context.conflicts`;
// - the host is `{ configGet(key) -> string | undefined, log(level, message) }`,
//   levels `trace`, `debug`, `info`, `warn`, `error`.
//
// The result is deterministic: no clock, no randomness, no hash-map order.

/** The longest local part an email address may have (RFC 5321). */
export const MAX_LOCAL_PART = 64;

/** Bound on suffix rounds (each round equals the conflicting login only by a 2^-24 chance). */
const MAX_ROUNDS = 16;

const RULES = {
  'middle-name': 'middle name infixed',
  'hashed-suffix': 'no middle name: hashed suffix',
  'login-base-middle-name': 'first or last name missing: login base and middle name',
  'login-base-hashed-suffix':
    'first or last name missing, no middle name: login base and hashed suffix',
};

/** The plugin's error: its message becomes Okta's `errorSummary`. */
export class ResolveError extends Error {}

/** The value of the first attribute `name`, or undefined. */
export function get(profile, name) {
  for (const attribute of profile) {
    if (attribute.name === name) return attribute.value;
  }
  return undefined;
}

/** The text of attribute `name`; undefined when absent or not a JSON string. */
export function getStr(profile, name) {
  const value = get(profile, name);
  return value !== undefined && value.tag === 'text' ? value.val : undefined;
}

// Rust's `char::is_whitespace`: the Unicode White_Space property. (JavaScript's
// `trim` and `\s` differ: they accept U+FEFF and miss U+0085.)
const WHITE_SPACE = new Set(
  '\t\n\x0b\x0c\r \x85\xa0\u1680' +
    '\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a' +
    '\u2028\u2029\u202f\u205f\u3000',
);
const ASCII_PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
const ALNUM = new Set('abcdefghijklmnopqrstuvwxyz0123456789');
const APOSTROPHES = new Set("'\u2019\u2018\u02bc`\u00b4");
const EXTRA_SEPARATORS = new Set('\u2010\u2011\u2012\u2013\u2014\u2015\u00b7\u2027\u2212');

/** Rust's `text.trim().is_empty()`. */
export function isBlank(text) {
  for (const c of text) {
    if (!WHITE_SPACE.has(c)) return false;
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

/**
 * One name as a piece of an email local part: `[a-z0-9-]`, no leading,
 * trailing or doubled `-`; empty when nothing can be kept.
 */
export function normaliseName(text) {
  let out = '';
  let pendingSeparator = false;
  // Code point by code point, lowercased each on its own like Rust's `char::to_lowercase`.
  for (const char of text) {
    for (const c of char.toLowerCase()) {
      let piece;
      if (ALNUM.has(c)) {
        piece = c;
      } else if (APOSTROPHES.has(c)) {
        continue; // O'Brien is one name: obrien, not o-brien.
      } else if (WHITE_SPACE.has(c) || ASCII_PUNCTUATION.has(c) || EXTRA_SEPARATORS.has(c)) {
        pendingSeparator = true;
        continue;
      } else {
        piece = TRANSLITERATION.get(c);
        if (piece === undefined) continue; // Other scripts, emoji, combining marks.
      }
      if (pendingSeparator && out.length > 0) out += '-';
      pendingSeparator = false;
      out += piece;
    }
  }
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

function asciiLower(text) {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
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

function jsonString(text) {
  let out = '"';
  for (const c of text) {
    const code = c.codePointAt(0);
    if (c === '"') out += '\\"';
    else if (c === '\\') out += '\\\\';
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\t') out += '\\t';
    else if (c === '\b') out += '\\b';
    else if (c === '\f') out += '\\f';
    else if (code < 0x20) out += '\\u' + code.toString(16).padStart(4, '0');
    else out += c;
  }
  return out + '"';
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
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

/** What identifies the imported user, as text to hash. */
export function identity(request, uniqueAttr) {
  const value = get(request.appUserProfile, uniqueAttr);
  if (value !== undefined) {
    if (value.tag === 'text' && !isBlank(value.val)) return value.val;
    if (value.tag !== 'null' && value.tag !== 'text') return toJson(value);
  }
  // Array.prototype.sort is stable.
  const attributes = [...request.appUserProfile].sort((a, b) => compareCodePoints(a.name, b.name));
  return '{' + attributes.map((a) => jsonString(a.name) + ':' + toJson(a.value)).join(',') + '}';
}

/** The UTF-8 bytes of `text`. */
export function utf8(text) {
  const bytes = [];
  for (const c of text) {
    const cp = c.codePointAt(0);
    if (cp < 0x80) bytes.push(cp);
    else if (cp < 0x800) bytes.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) bytes.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else
      bytes.push(
        0xf0 | (cp >> 18),
        0x80 | ((cp >> 12) & 0x3f),
        0x80 | ((cp >> 6) & 0x3f),
        0x80 | (cp & 0x3f),
      );
  }
  return bytes;
}

const FNV_OFFSET_BASIS = 0xcbf29ce484222325n;
const FNV_PRIME = 0x00000100000001b3n;
const MASK = (1n << 64n) - 1n;

/** 64-bit FNV-1a of `bytes`, as a BigInt. */
export function fnv1a64(bytes) {
  let h = FNV_OFFSET_BASIS;
  for (const b of bytes) {
    h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK;
  }
  return h;
}

/** Six hex digits: the top 24 bits of FNV-1a(identity [+ 0 byte + round]). */
export function identitySuffix(identityText, round) {
  const bytes = utf8(identityText);
  if (round > 0) bytes.push(0, ...utf8(String(round)));
  return (fnv1a64(bytes) >> 40n).toString(16).padStart(6, '0');
}

function setting(host, key, fallback) {
  // A blank setting can only be a mistake: it means "use the default".
  const value = host.configGet(key);
  return value === undefined || value === null || isBlank(value) ? fallback : value;
}

function namePart(request, attr) {
  for (const profile of [request.appUserProfile, request.userProfile]) {
    const text = getStr(profile, attr);
    if (text !== undefined) {
      const name = normaliseName(text);
      if (name.length > 0) return name;
    }
  }
  return undefined;
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

  const first = namePart(request, setting(host, 'first_name_attribute', 'firstName'));
  const middle = namePart(request, setting(host, 'middle_name_attribute', 'middleName'));
  const last = namePart(request, setting(host, 'last_name_attribute', 'lastName'));
  const uniqueAttr = setting(host, 'unique_attribute', 'externalId');

  let rule;
  let pieces;
  if (first !== undefined && last !== undefined) {
    if (middle !== undefined) {
      rule = 'middle-name';
      pieces = [first, middle, last];
    } else {
      rule = 'hashed-suffix';
      pieces = [first, last];
    }
  } else {
    // Nothing usable anywhere: a fixed word keeps the login readable.
    const base = normaliseLoginBase(conflictLocal) || 'user';
    if (middle !== undefined) {
      rule = 'login-base-middle-name';
      pieces = [base, middle];
    } else {
      rule = 'login-base-hashed-suffix';
      pieces = [base];
    }
  }
  host.log('debug', RULES[rule]);

  const ident = identity(request, uniqueAttr);
  const needsSuffix = rule === 'hashed-suffix' || rule === 'login-base-hashed-suffix';
  let local = assemble(pieces, needsSuffix ? identitySuffix(ident, 0) : undefined);
  // Rust's `eq_ignore_ascii_case`: only ASCII letters fold.
  const conflictFolded = asciiLower(conflictLocal);
  let round = 0;
  while (local === conflictFolded) {
    round += 1;
    if (round > MAX_ROUNDS) {
      throw new ResolveError(
        'login-conflict: no login different from the conflicting one could be derived',
      );
    }
    local = assemble(pieces, identitySuffix(ident, round));
  }
  if (round > 0) {
    host.log('debug', 'candidate equal to the conflicting login: suffix rehashed');
    rule += '+rehashed';
  }
  return {
    commands: [
      {
        tag: 'user-profile-update',
        val: [{ name: 'login', value: { tag: 'text', val: `${local}@${domain}` } }],
      },
    ],
    debugContext: [
      ['resolver', 'login-conflict'],
      ['rule', rule],
    ],
  };
}
