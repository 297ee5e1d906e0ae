#!/usr/bin/env bash
# Builds the seed corpora fuzz/corpus/<target>/ from the repository's own
# fixtures (so no corpus is committed): Okta import requests for the request
# decoder, event hook deliveries for the envelope decoder, every TOML block
# and file for the config parser. Also the JSON/TOML blocks of any Okta
# documentation pages in $HOOKBOX_FUZZ_SEEDS (default /work/shared/seeds,
# skipped if absent). Idempotent: seeds are named by content hash, and what
# the fuzzer added to a corpus is kept. encode_answer and near_valid_request
# read structured input (`arbitrary`), which no fixture is; they start empty.
set -euo pipefail
cd "$(dirname "$0")"
root=..
docs=${HOOKBOX_FUZZ_SEEDS:-/work/shared/seeds}
for t in decode_request near_valid_request encode_answer config event_envelope; do
    mkdir -p "corpus/$t"
done

python3 - "$root" "$docs" <<'PY'
import hashlib, json, pathlib, re, sys

root, docs = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
counts = {}

def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    name = hashlib.sha1(data).hexdigest()[:16]
    (pathlib.Path("corpus") / target / f"seed-{name}").write_bytes(data)
    counts[target] = counts.get(target, 0) + 1

def json_target(text):
    if "com.okta.event_hook" in text:
        return "event_envelope"
    return "decode_request"

# Import requests: the sample, the conformance cases' requests, the seeds in repo.
for p in [root / "tests/fixtures/sample-request.json", *sorted(root.glob("deploy/**/*.json"))]:
    text = p.read_text()
    put(json_target(text), text)
for p in sorted(root.glob("tests/conformance/*.json")):
    case = json.loads(p.read_text())
    if isinstance(case.get("request"), dict):
        put("decode_request", json.dumps(case["request"], indent=1, ensure_ascii=False))
for p in sorted(root.glob("tests/fixtures/events/*.json")):
    put("event_envelope", p.read_text())
for p in sorted((root / "fuzz/seeds").glob("*/*")):
    put(p.parent.name, p.read_bytes())

# Config: TOML files, and every ```toml block of the docs.
blocks = re.compile(r"```(toml|json)\n(.*?)```", re.S)
for p in sorted(root.glob("deploy/**/*.toml")):
    put("config", p.read_text())
# The configs the tests write (multi-line raw strings that have a table).
raw = re.compile(r'r#"(.*?)"#', re.S)
for p in [root / "host/src/config/tests.rs", *sorted(root.glob("tests/**/*.rs"))]:
    for body in raw.findall(p.read_text()):
        if "\n" in body and re.search(r"^\s*\[", body, re.M):
            put("config", body)
md = [p for p in root.rglob("*.md") if "target" not in p.parts and "fuzz" not in p.parts]
if docs.is_dir():
    md += sorted(docs.iterdir())
for p in md:
    for lang, body in blocks.findall(p.read_text(errors="replace")):
        if lang == "toml":
            put("config", body)
        else:
            put(json_target(body), body)
print("seeded:", ", ".join(f"{t} {n}" for t, n in sorted(counts.items())))
PY
