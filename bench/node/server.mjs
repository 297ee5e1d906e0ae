// The comparison service for bench/run: Okta's User Import Inline Hook written
// the way Okta's guide has users build one, with Node.js `https` and JSON, and
// the same login-conflict logic as plugins/login-conflict (its README states
// the rules; this is a line-by-line port, checked against hookbox by bench/run).
//
//   node server.mjs --port 9443 --cert cert.pem --key key.pem --secret S
//
// One process, one thread: pin it to a core, as bench/run does.

import https from 'node:https';
import fs from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '9443' },
    host: { type: 'string', default: '127.0.0.1' },
    cert: { type: 'string' },
    key: { type: 'string' },
    secret: { type: 'string', default: '' },
  },
});

const EVENT_TYPE = 'com.okta.import.transform';
const MAX_LOCAL_PART = 64;
const MAX_ROUNDS = 16;
const BODY_LIMIT = 1024 * 1024;

const RULES = {
  middle: ['middle-name', 'middle name infixed'],
  suffix: ['hashed-suffix', 'no middle name: hashed suffix'],
  baseMiddle: ['login-base-middle-name', 'first or last name missing: login base and middle name'],
  baseSuffix: ['login-base-hashed-suffix', 'first or last name missing, no middle name: login base and hashed suffix'],
};

const TRANSLIT = new Map();
for (const [ascii, chars] of [
  ['a', 'àáâãäåāăąǎ'], ['ae', 'æ'], ['c', 'çćĉċč'], ['e', 'èéêëēĕėęěə'], ['i', 'ìíîïĩīĭįıǐ'],
  ['d', 'ðďđ'], ['n', 'ñńņňŉŋ'], ['o', 'òóôõöøōŏőǒơ'], ['u', 'ùúûüũūŭůűųǔǖǘǚǜư'], ['y', 'ýÿŷ'],
  ['th', 'þ'], ['ss', 'ß'], ['g', 'ĝğġģ'], ['h', 'ĥħ'], ['ij', 'ĳ'], ['j', 'ĵ'], ['k', 'ķĸ'],
  ['l', 'ĺļľŀł'], ['oe', 'œ'], ['r', 'ŕŗř'], ['s', 'śŝşšſș'], ['t', 'ţťŧț'], ['w', 'ŵ'],
  ['z', 'źżž'], ['f', 'ƒ'], ['dz', 'ǆ'], ['lj', 'ǉ'], ['nj', 'ǌ'],
]) {
  for (const c of chars) TRANSLIT.set(c, ascii);
}

function transliterate(c) {
  const t = TRANSLIT.get(c);
  if (t) return t;
  const cp = c.codePointAt(0);
  if (cp >= 0xff41 && cp <= 0xff5a) return String.fromCharCode(cp - 0xff41 + 0x61); // fullwidth a-z
  if (cp >= 0xff10 && cp <= 0xff19) return String.fromCharCode(cp - 0xff10 + 0x30); // fullwidth 0-9
  return null;
}

const APOSTROPHE = /^['\u2019\u2018\u02BC`\u00B4]$/;
// Unicode White_Space (as Rust's char::is_whitespace), ASCII punctuation, dashes, middle dots, minus.
const SEPARATOR = /^[\t\n\v\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000!-\/:-@\[-`{-~\u2010-\u2015\u00B7\u2027\u2212]$/;
const ASCII_ALNUM = /^[a-z0-9]$/;

function normaliseName(text) {
  let out = '';
  let pendingSeparator = false;
  for (const ch of text) {
    for (const c of ch.toLowerCase()) {
      let piece;
      if (ASCII_ALNUM.test(c)) piece = c;
      else if (APOSTROPHE.test(c)) continue;
      else if (SEPARATOR.test(c)) { pendingSeparator = true; continue; }
      else if ((piece = transliterate(c)) === null) continue;
      if (pendingSeparator && out.length > 0) out += '-';
      pendingSeparator = false;
      out += piece;
    }
  }
  return out;
}

function normaliseLoginBase(local) {
  return local.split('.').map(normaliseName).filter((p) => p.length > 0).join('.');
}

// 64-bit FNV-1a over the UTF-8 bytes, in two 32-bit halves (BigInt is ~20x slower).
const encoder = new TextEncoder();
function fnvTop24(text, round) {
  let hi = 0xcbf29ce4, lo = 0x84222325;
  const feed = (bytes) => {
    for (const b of bytes) {
      lo = (lo ^ b) >>> 0;
      // h * (2^40 + 0x1b3) mod 2^64
      const loMul = lo * 0x1b3;
      const carry = Math.floor(loMul / 0x100000000);
      hi = (hi * 0x1b3 + carry + (lo << 8)) >>> 0;
      lo = loMul >>> 0;
    }
  };
  feed(encoder.encode(text));
  if (round > 0) { feed([0]); feed(encoder.encode(String(round))); }
  return (hi >>> 8).toString(16).padStart(6, '0');
}

// Compact JSON as the Rust SDK's Value::to_json renders it.
function toJson(v) {
  return JSON.stringify(v);
}

function identity(appUser, uniqueAttr) {
  const v = Object.hasOwn(appUser, uniqueAttr) ? appUser[uniqueAttr] : undefined;
  if (typeof v === 'string' && v.trim() !== '') return v;
  if (v !== undefined && v !== null && typeof v !== 'string') return toJson(v);
  // Sorted by UTF-8 bytes, as Rust sorts strings.
  const names = Object.keys(appUser).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return '{' + names.map((n) => JSON.stringify(n) + ':' + toJson(appUser[n])).join(',') + '}';
}

function assemble(pieces, suffix) {
  let head = pieces.join('.');
  const budget = MAX_LOCAL_PART - (suffix ? suffix.length + 1 : 0);
  if (head.length > budget) head = head.slice(0, budget).replace(/[.-]+$/, '');
  if (suffix) {
    if (head.length > 0) head += '.';
    head += suffix;
  }
  return head;
}

const asciiLower = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

function namePart(profiles, attr) {
  for (const p of profiles) {
    const v = p[attr];
    if (typeof v !== 'string') continue;
    const n = normaliseName(v);
    if (n.length > 0) return n;
  }
  return null;
}

// The resolver: { commands, debugContext } or { error: summary }.
function resolve(data, settings) {
  const conflicts = data.context?.conflicts ?? [];
  if (!conflicts.includes('login')) return { commands: [] };
  const user = data.user.profile;
  const appUser = data.appUser.profile;
  const login = user.login;
  if (typeof login !== 'string') {
    return { error: 'login-conflict: the Okta user profile has no login to take the domain from' };
  }
  const at = login.lastIndexOf('@');
  if (at < 0 || at === login.length - 1) {
    return { error: 'login-conflict: the conflicting login has no domain' };
  }
  const conflictLocal = login.slice(0, at);
  const domain = login.slice(at + 1);
  const profiles = [appUser, user];
  const first = namePart(profiles, settings.first);
  const middle = namePart(profiles, settings.middle);
  const last = namePart(profiles, settings.last);
  let rule, pieces;
  if (first !== null && last !== null) {
    [rule, pieces] = middle !== null ? [RULES.middle, [first, middle, last]] : [RULES.suffix, [first, last]];
  } else {
    const base = normaliseLoginBase(conflictLocal) || 'user';
    [rule, pieces] = middle !== null ? [RULES.baseMiddle, [base, middle]] : [RULES.baseSuffix, [base]];
  }
  const id = identity(appUser, settings.unique);
  const needsSuffix = rule === RULES.suffix || rule === RULES.baseSuffix;
  let local = assemble(pieces, needsSuffix ? fnvTop24(id, 0) : null);
  let round = 0;
  const conflictLower = asciiLower(conflictLocal);
  while (local === conflictLower) {
    round += 1;
    if (round > MAX_ROUNDS) {
      return { error: 'login-conflict: no login different from the conflicting one could be derived' };
    }
    local = assemble(pieces, fnvTop24(id, round));
  }
  return {
    commands: [{ type: 'com.okta.user.profile.update', value: { login: `${local}@${domain}` } }],
    debugContext: { resolver: 'login-conflict', rule: rule[0] + (round > 0 ? '+rehashed' : '') },
  };
}

const SETTINGS = { first: 'firstName', middle: 'middleName', last: 'lastName', unique: 'externalId' };

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function handle(req, res, raw) {
  let body;
  try {
    body = JSON.parse(raw);
  } catch {
    return reply(res, 400, { error: 'malformed JSON' });
  }
  if (!isObject(body) || body.eventType !== EVENT_TYPE || typeof body.eventId !== 'string'
      || !isObject(body.data) || !isObject(body.data.appUser?.profile) || !isObject(body.data.user?.profile)) {
    return reply(res, 400, { error: 'not an import hook request' });
  }
  const answer = resolve(body.data, SETTINGS);
  if (answer.error) return reply(res, 200, { error: { errorSummary: answer.error } });
  const out = {};
  if (answer.commands.length > 0) out.commands = answer.commands;
  if (answer.debugContext) out.debugContext = answer.debugContext;
  return reply(res, 200, out);
}

const server = https.createServer({ cert: fs.readFileSync(args.cert), key: fs.readFileSync(args.key) }, (req, res) => {
  if (req.method !== 'POST' || !/^\/hooks\/[^/]+\/import$/.test(req.url)) return reply(res, 404, { error: 'not found' });
  if (req.headers.authorization !== args.secret) return reply(res, 401, { error: 'unauthorized' });
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > BODY_LIMIT) { reply(res, 413, { error: 'too large' }); req.destroy(); return; }
    chunks.push(c);
  });
  req.on('end', () => {
    if (!res.headersSent) handle(req, res, Buffer.concat(chunks).toString('utf8'));
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(args.port), args.host, () => {
  console.log(`node listening on https://${args.host}:${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
