// Sends the first N bodies of a corpus to each server and checks that they
// all answer the same (status, commands, error, the resolver's rule), so the
// configurations bench/run compares really do the same work.
//
//   node check.mjs CORPUS.jsonl N SECRET URL...

import https from 'node:https';
import fs from 'node:fs';

const [corpus, n, secret, ...urls] = process.argv.slice(2);
const bodies = fs.readFileSync(corpus, 'utf8').split('\n').filter(Boolean).slice(0, Number(n));
const agent = new https.Agent({ keepAlive: true, rejectUnauthorized: false, maxSockets: 1 });

function post(url, body) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', Authorization: secret, 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function comparable({ status, body }) {
  let j;
  try { j = JSON.parse(body); } catch { return `${status} ${body}`; }
  return JSON.stringify({ status, commands: j.commands ?? [], error: j.error ?? null, rule: j.debugContext?.rule ?? null });
}

let mismatches = 0;
for (const [i, body] of bodies.entries()) {
  const answers = [];
  for (const url of urls) answers.push(comparable(await post(url, body)));
  if (answers.some((a) => a !== answers[0])) {
    mismatches++;
    if (mismatches <= 3) {
      console.error(`corpus line ${i + 1}: the servers disagree:`);
      answers.forEach((a, k) => console.error(`  ${urls[k]}\n    ${a}`));
    }
  }
}
agent.destroy();
console.log(`check: ${bodies.length} bodies, ${urls.length} servers, ${mismatches} disagreements`);
process.exit(mismatches === 0 ? 0 : 1);
