// Writes a corpus of Okta import hook request bodies, one compact JSON per
// line, for bench/run:  node corpus.mjs COUNT OUT.jsonl [SEED]
//
// The mix (deterministic for a seed): about 60 % carry a login conflict (the
// resolver's real work) and 40 % none; names vary in length and script
// (diacritics, apostrophes, hyphens, double-barrelled, CJK that normalises
// away), some have a middle name, some lack a first or last name or an
// externalId; about 20 % carry matched users (and a user id, LINK_USER).

import fs from 'node:fs';

const [count = '1000', out = 'corpus.jsonl', seedArg = '42'] = process.argv.slice(2);

// mulberry32: small, seedable, good enough to vary a corpus.
let seed = Number(seedArg) >>> 0;
function rand() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const chance = (p) => rand() < p;

const FIRST = ['George', 'Sally', 'Ada', 'José', 'Zoë', 'Łukasz', 'Mary Ann', 'Jean-Luc', 'Søren', 'Ævar',
  'Björn', 'Chloé', 'François', 'Nguyễn', 'Ines', 'Mohammed', 'Wei', '王', 'Aleksandr', 'Đorđe', 'Ðan',
  'Maximilian-Alexander', 'Oluwaseun', 'Þóra', 'Renée'];
const MIDDLE = ['Alexander', 'Marie', 'J.', 'Ånund', 'de la Cruz', 'Ōta', 'Lee', 'Ignatius'];
const LAST = ["O'Brien", 'Smith', 'Lovelace', 'García Márquez', 'Müller', 'Ødegaard', 'Straße', 'Kowalczyk',
  'van der Berg', 'Nakamura', 'Œuvray', 'Þórsdóttir', 'Smith-Jones', '李', 'Wolfeschlegelsteinhausenbergerdorff'];
const DOMAINS = ['example.com', 'clouditude.net', 'corp.example.org', 'mail.example.co.uk'];

function ascii(s) {
  return s.normalize('NFKD').replace(/[^\x20-\x7e]/g, '').replace(/[^A-Za-z0-9]+/g, '.').replace(/^\.|\.$/g, '').toLowerCase();
}

function request(i) {
  const first = chance(0.9) ? pick(FIRST) : null;
  const last = chance(0.9) ? pick(LAST) : null;
  const middle = chance(0.35) ? pick(MIDDLE) : null;
  const domain = pick(DOMAINS);
  const local = [first, last].filter(Boolean).map(ascii).join('.') || `user${i}`;
  const login = `${local}@${domain}`;
  const conflict = chance(0.6);
  const matched = chance(0.2);
  const appUser = {
    firstName: first,
    lastName: last,
    mobilePhone: null,
    accountType: pick(['PRO', 'FREE', 'ENTERPRISE']),
    secondEmail: null,
    failProvisioning: null,
    failDeprovisioning: null,
    groups: ['everyone@' + domain, pick(['tech@', 'sales@', 'ops@']) + domain],
    userName: local.replace(/\./g, '') + i,
    email: login,
  };
  if (middle) appUser.middleName = middle;
  if (chance(0.8)) appUser.externalId = `user${100000 + i}`;
  if (chance(0.1)) appUser.employeeNumber = 1000 + i;
  const user = {
    lastName: last, zipCode: null, city: pick([null, 'Paris', 'Lagos', 'Osaka']), secondEmail: null,
    postAddress: null, login, firstName: first, primaryPhone: null, mobilePhone: null,
    streetAddress: null, countryCode: pick([null, 'FR', 'NG', 'JP', 'US']), typeId: null, state: null,
    email: login,
  };
  const body = {
    source: 'cal7eyxOsnb20oWbZ0g4',
    eventId: `bench${i.toString(36).padStart(8, '0')}`,
    eventTime: '2019-02-27T20:59:04.000Z',
    eventTypeVersion: '1.0',
    cloudEventVersion: '0.1',
    eventType: 'com.okta.import.transform',
    contentType: 'application/json',
    data: {
      context: {
        conflicts: conflict ? ['login'] : [],
        application: { name: 'test_app', id: '0oa7ey7aLRuBvcYUD0g4', label: 'app7ey6eU5coTOO5v0g4', status: 'ACTIVE' },
        job: { id: 'ij17ez2AWtMZRfCZ60g4', type: 'import:users' },
        matches: matched ? [`00u${(1e9 + i).toString(36)}`] : [],
        policy: ['EMAIL', 'FIRST_AND_LAST_NAME'],
      },
      action: { result: matched ? 'LINK_USER' : 'CREATE_USER' },
      appUser: { profile: appUser },
      user: matched ? { id: `00u${(1e9 + i).toString(36)}`, profile: user } : { profile: user },
    },
  };
  return JSON.stringify(body);
}

const lines = [];
for (let i = 0; i < Number(count); i++) lines.push(request(i));
fs.writeFileSync(out, lines.join('\n') + '\n');
