// Okta request JSON -> the WIT-shaped request, as the hookbox host decodes it
// (host/src/hook/decode.rs), so the conformance cases can run natively.
// JSON.parse cannot tell `1` from `1.0` nor keep big integers, so this file
// has its own small parser that keeps each number's source text.

import { rustFloat } from '../src/login_conflict.js';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

/** Parses JSON into nodes: {t:'obj', pairs}, {t:'arr', items}, {t:'num', src}, string, boolean, null. */
export function parse(text) {
  let i = 0;
  const ws = () => {
    while (' \t\n\r'.includes(text[i]) && i < text.length) i++;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const pairs = [];
      ws();
      if (text[i] === '}') {
        i++;
        return { t: 'obj', pairs };
      }
      for (;;) {
        ws();
        const key = string();
        ws();
        if (text[i++] !== ':') throw new SyntaxError(`':' expected at ${i}`);
        const v = value();
        // serde_json (preserve_order): a repeated key keeps its first position, last value.
        const at = pairs.findIndex(([k]) => k === key);
        if (at >= 0) pairs[at] = [key, v];
        else pairs.push([key, v]);
        ws();
        const d = text[i++];
        if (d === '}') return { t: 'obj', pairs };
        if (d !== ',') throw new SyntaxError(`',' expected at ${i}`);
      }
    }
    if (c === '[') {
      i++;
      const items = [];
      ws();
      if (text[i] === ']') {
        i++;
        return { t: 'arr', items };
      }
      for (;;) {
        items.push(value());
        ws();
        const d = text[i++];
        if (d === ']') return { t: 'arr', items };
        if (d !== ',') throw new SyntaxError(`',' expected at ${i}`);
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) throw new SyntaxError(`unexpected ${c} at ${i}`);
    i += m[0].length;
    return { t: 'num', src: m[0] };
  };
  const string = () => {
    const m = /^"(?:[^"\\]|\\.)*"/s.exec(text.slice(i));
    if (!m) throw new SyntaxError(`string expected at ${i}`);
    i += m[0].length;
    return JSON.parse(m[0]);
  };
  const v = value();
  ws();
  if (i !== text.length) throw new SyntaxError(`trailing text at ${i}`);
  return v;
}

/** A node's number: {integer: BigInt} or {float: number}, as serde_json reads it. */
function number(src) {
  if (/^-?\d+$/.test(src)) {
    const n = BigInt(src);
    // serde_json reads integers beyond u64 (or below i64) as floats.
    if (n >= I64_MIN && n <= U64_MAX) return { integer: n };
  }
  return { float: Number(src) };
}

/** A float as serde_json (ryu) writes it inside JSON text: `1.0`, `1e21`, `1e-7`. */
function ryu(f) {
  if (!Number.isFinite(f)) return 'null';
  let text = rustFloat(f);
  const sign = text.startsWith('-') ? '-' : '';
  text = text.replace(/^-/, '');
  const [whole, frac = ''] = text.split('.');
  const all = whole + frac;
  let digits = all.replace(/^0+/, '');
  if (!digits) return sign + '0.0';
  const point = whole.length - (all.length - digits.length);
  digits = digits.replace(/0+$/, '');
  if (point > 0 && point <= 16) {
    if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length) + '.0';
    return sign + digits.slice(0, point) + '.' + digits.slice(point);
  }
  if (point > -5 && point <= 0) return sign + '0.' + '0'.repeat(-point) + digits;
  const mantissa = digits[0] + (digits.length > 1 ? '.' + digits.slice(1) : '');
  return sign + mantissa + 'e' + String(point - 1);
}

/** serde_json's compact rendering of a node (key order kept). */
export function jsonText(node) {
  if (node === null) return 'null';
  if (node === true) return 'true';
  if (node === false) return 'false';
  if (typeof node === 'string') return JSON.stringify(node);
  if (node.t === 'num') {
    const n = number(node.src);
    return n.integer !== undefined ? String(n.integer) : ryu(n.float);
  }
  if (node.t === 'arr') return '[' + node.items.map(jsonText).join(',') + ']';
  return '{' + node.pairs.map(([k, v]) => JSON.stringify(k) + ':' + jsonText(v)).join(',') + '}';
}

function scalar(node) {
  if (node === null) return { tag: 'null' };
  if (typeof node === 'boolean') return { tag: 'boolean', val: node };
  if (typeof node === 'string') return { tag: 'text', val: node };
  if (node.t === 'num') {
    const n = number(node.src);
    if (n.float !== undefined) return { tag: 'float', val: n.float };
    // A u64 above i64::MAX has no typed case: it stays JSON text.
    return n.integer <= I64_MAX ? { tag: 'integer', val: n.integer } : undefined;
  }
  return undefined;
}

/** A node as a WIT `value`. */
export function value(node) {
  const s = scalar(node);
  if (s !== undefined) return s;
  if (node.t === 'arr') {
    const items = node.items.map(scalar);
    if (items.every((x) => x !== undefined)) return { tag: 'array', val: items };
  }
  return { tag: 'json', val: jsonText(node) };
}

const field = (node, key) => node?.pairs?.find(([k]) => k === key)?.[1];

/** A parsed Okta request -> the WIT `import-request` fields the resolver reads. */
export function decode(root) {
  const data = field(root, 'data');
  const context = field(data, 'context');
  const profile = (holder) =>
    field(holder, 'profile').pairs.map(([name, v]) => ({ name, value: value(v) }));
  return {
    appUserProfile: profile(field(data, 'appUser')),
    userProfile: profile(field(data, 'user')),
    userId: field(field(data, 'user'), 'id'),
    context: { conflicts: field(context, 'conflicts')?.items ?? [] },
  };
}

/** A node as plain JSON text with key order kept (for comparing answers). */
export function canonical(node) {
  return jsonText(node);
}
