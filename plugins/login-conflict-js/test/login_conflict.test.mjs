// Native tests of the JavaScript resolver: the Rust reference's unit tests,
// ported, and every shared conformance case (`tests/conformance/*.json`).
// Run from plugins/login-conflict-js: node --test test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as lc from '../src/login_conflict.js';
import { canonical, decode, parse } from './okta_json.mjs';

const CONFORMANCE = join(dirname(fileURLToPath(import.meta.url)), '../../../tests/conformance');

/** Settings, a log, an in-memory claim store and directory (like the Rust SDK's fakes). */
function fakeHost(settings = {}, { claims = new Map(), directory, directoryError, storeError } = {}) {
  const logs = [];
  const check = (...texts) => {
    if (storeError !== undefined) throw new lc.StoreError(storeError);
    for (const t of texts) {
      if (!t || new TextEncoder().encode(t).length > lc.MAX_KEY) throw new lc.StoreError('invalid');
    }
  };
  const host = {
    logs,
    claims,
    configGet: (key) => settings[key],
    log: (level, message) => logs.push([level, message]),
    claim(key, owner) {
      check(key, owner);
      const holder = claims.get(key);
      if (holder === undefined) {
        claims.set(key, owner);
        return 'claimed';
      }
      return holder === owner ? 'already-yours' : 'taken';
    },
    ownerOf(key) {
      check(key);
      return claims.get(key);
    },
    release(key, owner) {
      check(key, owner);
      if (claims.get(key) !== owner) return false;
      claims.delete(key);
      return true;
    },
    findUser(login) {
      if (directory === undefined) throw new lc.DirectoryError('not-configured');
      if (directoryError !== undefined) throw new lc.DirectoryError(directoryError);
      return directory.get(login.toLowerCase());
    },
    setStoreError(kind) {
      storeError = kind;
    },
  };
  return host;
}

const text = (s) => ({ tag: 'text', val: s });
const attrs = (pairs) =>
  pairs.map(([name, v]) => ({ name, value: typeof v === 'string' ? text(v) : v }));

function conflict(login, app = [], user = []) {
  return {
    appUserProfile: attrs(app),
    userProfile: attrs([['login', login], ...user]),
    context: { conflicts: ['login'] },
  };
}

const loginOf = (response) => response.commands[0].val[0].value.val;
const ruleOf = (response) => Object.fromEntries(response.debugContext).rule;

test('george gets his middle name infixed', () => {
  const host = fakeHost();
  const response = lc.resolve(
    conflict('george.smith@example.com', [
      ['firstName', 'George'],
      ['middleName', 'Alexander'],
      ['lastName', 'Smith'],
    ]),
    host,
  );
  assert.deepEqual(response, {
    commands: [
      {
        tag: 'user-profile-update',
        val: [{ name: 'login', value: text('george.alexander.smith@example.com') }],
      },
    ],
    debugContext: [
      ['resolver', 'login-conflict'],
      ['rule', 'middle-name'],
      ['claim', 'claimed'],
    ],
  });
  assert.deepEqual(host.logs, [['debug', 'login claimed by rule middle-name']]);
});

/** fnv1a64's halves as 16 hex digits. */
const hex64 = ({ hi, lo }) => hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');

test('fnv1a64 matches the Rust implementation', () => {
  // Expected values computed with the Rust plugin's Fnv1a64 definition over
  // `str::as_bytes()` (offset basis 0xcbf29ce484222325, prime 0x100000001b3,
  // xor then multiply per UTF-8 byte).
  const long = 'Ünïcödé ✓ 李 😀 '.repeat(300) + 'x'.repeat(5000); // 12,500 UTF-8 bytes
  for (const [input, expected] of [
    ['', 'cbf29ce484222325'],
    ['a', 'af63dc4c8601ec8c'],
    ['foobar', '85944171f73967e8'],
    ['user221', '272ed9a4b5e82665'],
    ['\0', 'af63bd4c8601b7df'],
    ['é😀', '52da6ebdce68376c'], // 2-byte and 4-byte (surrogate pair) UTF-8
    ['Zoë Łukasz 李 😀', 'ae09e03327d76a4a'], // 1-, 2-, 3- and 4-byte UTF-8
    ['user221\x001', '7742a17e4903ceaa'], // what round 1 hashes
    [long, '57f120bfec61967d'],
  ]) {
    assert.equal(hex64(lc.fnv1a64(input)), expected, input.slice(0, 20));
  }
  assert.equal(lc.identitySuffix('user221', 0), '272ed9');
  assert.equal(lc.identitySuffix('user221', 1), '7742a1');
  assert.equal(lc.identitySuffix('user221', 12), 'aa0701');
});

test('fnv1a64 agrees with a BigInt FNV-1a over UTF-8 bytes', () => {
  // The straightforward definition, slow but obviously right.
  const reference = (text) => {
    let h = 0xcbf29ce484222325n;
    for (const b of new TextEncoder().encode(text)) {
      h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
    }
    return h.toString(16).padStart(16, '0');
  };
  let seed = 1;
  const random = (n) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const alphabet = ['a', 'Z', '0', '\0', '\x7f', '\x80', 'é', '\u07ff', '\u0800', 'ẞ', '\uffff', '😀', '\u{10ffff}'];
  for (let n = 0; n < 300; n++) {
    let text = '';
    for (let k = random(40); k > 0; k--) text += alphabet[random(alphabet.length)];
    assert.equal(hex64(lc.fnv1a64(text)), reference(text), JSON.stringify(text));
  }
});

test('names are normalised', () => {
  const cases = [
    ['Mary Ann', 'mary-ann'], ['Jean-Luc', 'jean-luc'], ["O'Brien", 'obrien'],
    ['O\u2019Brien', 'obrien'], ['d`Artagnan', 'dartagnan'], ['  van  der   Berg ', 'van-der-berg'],
    ['a_b.c', 'a-b-c'], ['--Jean -- Luc--', 'jean-luc'], ['José', 'jose'], ['Ñuñez', 'nunez'],
    ['Müller', 'muller'], ['Weiß', 'weiss'], ['STRAẞE', 'strasse'], ['Ærøskøbing', 'aeroskobing'],
    ['Œuvre', 'oeuvre'], ['Łukasz', 'lukasz'], ['Đorđe', 'dorde'], ['Þór', 'thor'], ['Åsa', 'asa'],
    ['İsmail', 'ismail'], ['Ștefan Țurcanu', 'stefan-turcanu'], ['Dvořák', 'dvorak'],
    ['José\u0301', 'jose'], ['Zoë 😀 Smith', 'zoe-smith'], ['Иван', ''], ['李', ''],
    ['李 Wei', 'wei'], ['Anna 李 Maria', 'anna-maria'], ['R2-D2', 'r2-d2'], ['ＡＢＣ１', 'abc1'],
    ['', ''], ['   ', ''], ["'", ''], ['-', ''],
    // JavaScript's trim/\s accept U+FEFF and miss U+0085; Rust's is_whitespace is the reverse.
    ['a\ufeffb', 'ab'], ['a\x85b', 'a-b'], ['a\x1cb', 'ab'], ['\u212aelvin', 'kelvin'],
  ];
  for (const [given, expected] of cases) assert.equal(lc.normaliseName(given), expected, given);
});

test('every Latin-1 and Extended-A letter is transliterated', () => {
  for (let cp = 0xc0; cp < 0x180; cp++) {
    const c = String.fromCodePoint(cp);
    if (!/\p{Alphabetic}/u.test(c)) continue;
    assert.match(lc.normaliseName(c), /^[a-z]+$/, c);
  }
});

test('floats render as Rust displays them', () => {
  for (const [f, s] of [
    [1.0, '1'], [2.5, '2.5'], [-0, '-0'], [0, '0'], [1e21, '1' + '0'.repeat(21)],
    [1e-7, '0.0000001'], [1.5e-7, '0.00000015'], [123.456, '123.456'],
    [1e16, '10000000000000000'], [0.1, '0.1'], [-3.25, '-3.25'], [NaN, 'null'], [Infinity, 'null'],
  ]) {
    assert.equal(lc.rustFloat(f), s, String(f));
  }
});

test('identity rendering sorts by code point', () => {
  const request = {
    appUserProfile: attrs([
      ['z', 'last'],
      ['externalId', { tag: 'null' }],
      ['a', { tag: 'array', val: [{ tag: 'integer', val: 1n }, { tag: 'null' }] }],
      ['q"', { tag: 'float', val: 2.5 }],
      ['😀', 'e'],
      ['\uff21', 'f'],
    ]),
  };
  assert.equal(
    lc.identity(request, 'externalId'),
    '{"a":[1,null],"externalId":null,"q\\"":2.5,"z":"last","\uff21":"f","😀":"e"}',
  );
  assert.equal(
    lc.identity({ appUserProfile: attrs([['externalId', { tag: 'integer', val: 221n }]]) }, 'externalId'),
    '221',
  );
  assert.equal(lc.identity({ appUserProfile: [] }, 'externalId'), '{}');
});

test('the cut never leaves a dot or dash at the end', () => {
  for (let n = 1; n < 70; n++) {
    const local = loginOf(
      lc.resolve(
        conflict('x@example.com', [
          ['firstName', 'a'.repeat(n)],
          ['middleName', 'b-c'],
          ['lastName', 'd-e-f-g-h-i-j-k-l-m-n-o-p-q-r-s-t-u-v-w-x-y-z'],
        ]),
        fakeHost(),
      ),
    ).split('@')[0];
    assert.ok(local.length <= 64 && !/[.-]$/.test(local) && !local.includes('..'), local);
  }
});

test('the new login always differs, ASCII case folding only', () => {
  const r = conflict('George.Alexander.Smith@example.com', [
    ['firstName', 'George'],
    ['middleName', 'Alexander'],
    ['lastName', 'Smith'],
    ['externalId', 'g1'],
  ]);
  const response = lc.resolve(r, fakeHost());
  assert.equal(loginOf(response), `george.smith.${lc.identitySuffix('g1', 0)}@example.com`);
  assert.equal(ruleOf(response), 'hashed-suffix');
  const kelvin = conflict(`\u212a.smith.${lc.identitySuffix('1', 0)}@example.com`, [
    ['firstName', 'K'],
    ['lastName', 'Smith'],
    ['externalId', '1'],
  ]);
  assert.equal(ruleOf(lc.resolve(kelvin, fakeHost())), 'hashed-suffix');
});

test('errors and no conflict', () => {
  for (const r of [
    { appUserProfile: [], userProfile: [], context: { conflicts: ['login'] } },
    { appUserProfile: [], userProfile: attrs([['login', { tag: 'integer', val: 42n }]]), context: { conflicts: ['login'] } },
    conflict('george.smith'),
    conflict('george.smith@'),
  ]) {
    assert.throws(() => lc.resolve(r, fakeHost()), (e) => e instanceof lc.ResolveError && e.message.startsWith('login-conflict: '));
  }
  const host = fakeHost();
  assert.deepEqual(
    lc.resolve({ appUserProfile: [], userProfile: [], context: { conflicts: ['email'] } }, host),
    { commands: [], debugContext: [] },
  );
  assert.deepEqual(host.logs, [['debug', 'no login conflict: nothing to do']]);
});

/** The body the host answers, minus `debugContext.hookboxPlugin`, as a parse() node. */
function answerBody(request, host) {
  let response;
  try {
    response = lc.resolve(request, host);
  } catch (e) {
    if (!(e instanceof lc.ResolveError)) throw e;
    return { t: 'obj', pairs: [['error', { t: 'obj', pairs: [['errorSummary', e.message]] }]] };
  }
  const pairs = [];
  if (response.commands.length > 0) {
    pairs.push([
      'commands',
      {
        t: 'arr',
        items: response.commands.map((c) => ({
          t: 'obj',
          pairs: [
            ['type', 'com.okta.user.profile.update'],
            ['value', { t: 'obj', pairs: c.val.map((a) => [a.name, a.value.val]) }],
          ],
        })),
      },
    ]);
  }
  if (response.debugContext.length > 0) {
    pairs.push(['debugContext', { t: 'obj', pairs: response.debugContext }]);
  }
  return { t: 'obj', pairs };
}

const george = (ext) =>
  conflict('george.smith@example.com', [
    ['firstName', 'George'],
    ['middleName', 'Alexander'],
    ['lastName', 'Smith'],
    ['externalId', ext],
  ]);
const debugOf = (response) => Object.fromEntries(response.debugContext);

test('two owners with the same name get distinct logins; the same owner the same again', () => {
  const claims = new Map();
  const one = lc.resolve(george('u1'), fakeHost({}, { claims }));
  const two = lc.resolve(george('u2'), fakeHost({}, { claims }));
  assert.equal(loginOf(one), 'george.alexander.smith@example.com');
  assert.equal(loginOf(two), `george.smith.${lc.identitySuffix('u2', 0)}@example.com`);
  claims.delete('george.alexander.smith@example.com'); // an operator released it
  const again = lc.resolve(george('u2'), fakeHost({}, { claims }));
  assert.equal(loginOf(again), loginOf(two));
  assert.equal(debugOf(again).claim, 'already-yours');
});

test('a failing store answers the stateless hashed suffix, or an error', () => {
  const host = fakeHost({}, { storeError: 'timeout' });
  const response = lc.resolve(george('u1'), host);
  assert.equal(loginOf(response), `george.smith.${lc.identitySuffix('u1', 0)}@example.com`);
  assert.equal(debugOf(response).claim, 'unavailable');
  assert.throws(
    () => lc.resolve(george('u1'), fakeHost({ on_store_error: 'error' }, { storeError: 'unavailable' })),
    lc.ResolveError,
  );
});

test('the directory skips logins other Okta users hold', () => {
  const directory = new Map([['george.alexander.smith@example.com', '00u9']]);
  const response = lc.resolve(george('u1'), fakeHost({}, { directory }));
  assert.equal(loginOf(response), `george.smith.${lc.identitySuffix('u1', 0)}@example.com`);
  assert.equal(debugOf(response).directory, 'checked');
});

test('the event handler records a login Okta refused', () => {
  const host = fakeHost();
  const event = {
    tag: 'sync',
    val: {
      uuid: 'ev1',
      oktaUser: { id: '00u5', type: 'User', alternateId: 'old@example.com' },
      application: { id: '0oa1', type: 'AppInstance' },
      appUser: { id: 'x', type: 'AppUser', alternateId: 'George.Alexander.Smith@example.com' },
      debugData: [
        ['error_code', 'notUniqueWithinOrg'],
        ['error_field', 'login'],
      ],
    },
  };
  lc.handle(event, host);
  assert.deepEqual([...host.claims], [['george.alexander.smith@example.com', 'okta:00u5']]);
  assert.deepEqual(host.logs, [
    ['info', 'login not unique (event ev1, Okta user 00u5, app 0oa1): recorded as taken'],
  ]);
  assert.equal(
    loginOf(lc.resolve(george('u1'), host)),
    `george.smith.${lc.identitySuffix('u1', 0)}@example.com`,
  );
  lc.handle({ tag: 'other', val: {} }, host);
  host.setStoreError('unavailable');
  assert.throws(() => lc.handle(event, host), lc.ResolveError);
});

const files = readdirSync(CONFORMANCE).filter((f) => f.endsWith('.json')).sort();
test('there are conformance cases', () => assert.ok(files.length > 0));
for (const file of files) {
  test(`conformance: ${file}`, () => {
    const c = parse(readFileSync(join(CONFORMANCE, file), 'utf8'));
    const get = (k) => c.pairs.find(([key]) => key === k)[1];
    const opt = (k) => c.pairs.find(([key]) => key === k)?.[1];
    const settings = Object.fromEntries(get('settings').pairs);
    const claims = new Map(opt('claims')?.pairs ?? []);
    const store = opt('store');
    const dir = opt('directory');
    const host = fakeHost(settings, {
      claims,
      storeError: store !== undefined && store !== 'ok' ? store : undefined,
      directory: dir && new Map(dir.pairs.map(([k, v]) => [k.toLowerCase(), v])),
      directoryError: opt('directory_error'),
    });
    const body = answerBody(decode(get('request')), host);
    assert.equal(canonical(body), canonical(get('expected')));
    const after = opt('claims_after');
    if (after !== undefined) {
      const sorted = (pairs) => JSON.stringify([...pairs].sort(([a], [b]) => (a < b ? -1 : 1)));
      assert.equal(sorted(claims), sorted(after.pairs));
    }
  });
}
