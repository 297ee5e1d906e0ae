#!/usr/bin/env python3
"""Runs every conformance case through a real hookbox host, for one or more plugins.

    python3 tests/conformance/run.py [--hookbox BIN] [--logs] NAME=PLUGIN.wasm ...
    python3 tests/conformance/run.py --write-expected rust=login_conflict.wasm

For each plugin the script starts `hookbox serve --config` (a throwaway config:
a self-signed certificate made with `openssl`, one tenant per case, so each
case starts from its own empty claim store plus its `claims`, seeded with
`hookbox claims claim` before the server starts), POSTs each case's `request` to
`/hooks/<tenant>/import`, drops the `hookboxPlugin` key from `debugContext`
(and `debugContext` itself if that leaves it empty) and compares the body
with the case's `expected`, key order included. Cases with `store: "unavailable"`
run on a second host whose store is a Redis nobody listens on; a case with a
`directory` gets a fake Okta Users API over HTTPS on loopback (`FakeOkta` below)
seeded with its users, failing as its `directory_error` says.

`--logs` also compares the plugin log lines (level and text, captured from
the host's JSON log) of every plugin with those of the first one named.
`--write-expected` rewrites each case's `expected` from the (single) plugin
given: use it only with the Rust reference resolver.
`--differential N` runs N seeded random requests (tricky names, logins and
value types) instead of the cases, and compares every plugin's answers with
the first plugin's (give the Rust reference first).

Needs only Python 3.8+, `openssl`, and a built hookbox binary (default:
`$HOOKBOX_BIN`, else `target/release/hookbox` of the repository).
Exit status 0 when every case passed for every plugin.
"""

import argparse
import http.server
import json
import os
import pathlib
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
SECRET = "conformance-secret"
LISTENING = re.compile(r"hookbox listening on (https://\S+)")


def load_cases():
    cases = []
    for path in sorted(HERE.glob("*.json")):
        with open(path, encoding="utf-8") as f:
            case = json.load(f, object_pairs_hook=OrderedDict)
        cases.append((path, case))
    return cases


def ordered(value):
    """Canonical text of a JSON value, key order kept (so order differences fail)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def strip_plugin_key(body):
    debug = body.get("debugContext")
    if isinstance(debug, dict):
        debug.pop("hookboxPlugin", None)
        if not debug:
            del body["debugContext"]
    return body


def settings_key(settings):
    return json.dumps(settings, sort_keys=True)


def toml_string(s):
    return json.dumps(s)  # a JSON string is a valid TOML basic string


class Host:
    """One hookbox process serving `plugin` under one tenant per case.

    A tenant per case, because the claim store is scoped by tenant: each case
    starts from an empty store (plus its own `claims`), whatever ran before.
    `tenants` maps a tenant id to its settings.
    """

    def __init__(self, binary, plugin, tenants, workdir, seed=None, directories=None,
                 store=None):
        self.binary = binary
        lines = [
            "[tls]",
            'cert = "cert.pem"',
            'key = "key.pem"',
            "",
        ]
        if store:
            lines += ["[store]"] + store + [""]
        directories = directories or {}
        for tenant, settings in tenants.items():
            key = settings_key(settings)
            lines += [
                "[[tenants]]",
                "id = %s" % toml_string(tenant),
                "plugin = %s" % toml_string(str(plugin)),
            ]
            if tenant in directories:
                lines.append("directory = %s" % directories[tenant].toml(workdir, tenant))
            lines += [
                "[tenants.auth]",
                'secrets_env = ["CONFORMANCE_SECRET"]',
                "[tenants.settings]",
            ]
            for k, v in json.loads(key).items():
                lines.append("%s = %s" % (toml_string(k), toml_string(v)))
            lines.append("")
        config = self.config = workdir / "hookbox.toml"
        config.write_text("\n".join(lines), encoding="utf-8")
        # Claims a case starts with, written before the server starts (the
        # embedded store belongs to one process at a time):
        # `hookbox claims claim --config C --tenant T KEY OWNER`.
        for tenant, key, owner in seed or []:
            subprocess.run(
                [str(binary), "claims", "claim", "--config", str(config), "--tenant", tenant,
                 key, owner],
                check=True, stdout=subprocess.DEVNULL,
            )
        env = dict(os.environ)
        env["CONFORMANCE_SECRET"] = SECRET
        env["HOOKBOX_LOG"] = "info,hookbox::plugin=trace"
        self.log_path = workdir / "host.log"
        self.log_file = open(self.log_path, "w", encoding="utf-8")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(config), "--listen", "127.0.0.1:0",
             "--log-format", "json"],
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            env=env,
            text=True,
        )
        self.url = None
        # The host compiles every tenant's plugin before it binds.
        deadline = started + 600
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = LISTENING.search(line)
            if m:
                self.url = m.group(1)
                break
        self.startup_seconds = time.monotonic() - started
        if self.url is None:
            self.stop()
            raise RuntimeError(
                "hookbox did not start; its log:\n" + self.log_path.read_text(encoding="utf-8")
            )
        # Keep draining stdout so the host never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def post(self, tenant, request):
        data = json.dumps(request, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(
            "%s/hooks/%s/import" % (self.url, tenant),
            data=data,
            headers={"Authorization": SECRET, "Content-Type": "application/json"},
            method="POST",
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=30) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        elapsed = time.monotonic() - started
        text = body.decode("utf-8")
        parsed = json.loads(text, object_pairs_hook=OrderedDict) if text else None
        return status, parsed, elapsed

    def plugin_logs(self):
        """Plugin log lines by Okta event id: [(level, message), ...]."""
        logs = {}
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("target") != "hookbox::plugin":
                continue
            event = (entry.get("span") or {}).get("event_id")
            message = (entry.get("fields") or {}).get("message")
            logs.setdefault(event, []).append((entry.get("level"), message))
        return logs

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


def make_cert(workdir, name="", extra=()):
    """A self-signed P-256 certificate and key: `{name}cert.pem`, `{name}key.pem`."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(workdir / (name + "key.pem")),
         "-out", str(workdir / (name + "cert.pem")), "-days", "2", "-subj", "/CN=localhost",
         *extra],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


OKTA_TOKEN = "00fAkE-oKtA_ApI-tOkEn-conformance"


class FakeOkta:
    """An Okta Users API over HTTPS on loopback for one directory case, as
    `hookbox_directory::testing::FakeOkta` serves it to the Rust harness:
    `GET /api/v1/users/{login}` with `Authorization: SSWS <token>`, a seeded
    user found case-insensitively (200), anyone else 404, rate-limit headers
    on every answer. `error` makes every lookup fail as the case says:
    `rate-limited` (429 until an hour from now), `unavailable` (503),
    `denied` (the host is given another token: 401)."""

    ERRORS = ("rate-limited", "unavailable", "denied")

    def __init__(self, workdir, name, users, error=None):
        if error not in (None,) + self.ERRORS:
            raise ValueError("directory_error %r" % error)
        # rustls wants the name in a subjectAltName and refuses a CA
        # certificate as the server's own; the certificate is its own CA file.
        make_cert(workdir, name, ["-addext", "subjectAltName=IP:127.0.0.1",
                                  "-addext", "basicConstraints=critical,CA:FALSE"])
        self.ca_file = workdir / (name + "cert.pem")
        self.users = {login.lower(): (login, uid) for login, uid in users.items()}
        self.error = error
        self.too_many_until = int(time.time()) + 3600
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                status, body, headers = fake.answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.ca_file), str(workdir / (name + "key.pem")))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path, authorization):
        """(status, JSON body, extra headers) for one request."""
        def error(status, code, summary, headers=None):
            return status, {"errorCode": code, "errorSummary": summary, "errorLink": code,
                            "errorId": "oaeFakeOktaErrorId", "errorCauses": []}, headers or {}
        prefix = "/api/v1/users/"
        if not path.startswith(prefix):
            return error(404, "E0000022", "The endpoint does not support the provided HTTP method")
        if self.error == "unavailable":
            return error(503, "E0000010", "Service is in read only mode")
        if authorization != "SSWS " + OKTA_TOKEN:
            return error(401, "E0000011", "Invalid token provided")
        limit = {"X-Rate-Limit-Limit": "600"}
        if self.error == "rate-limited":
            return error(429, "E0000047", "API call exceeded rate limit due to too many requests.",
                         dict(limit, **{"X-Rate-Limit-Remaining": "0",
                                        "X-Rate-Limit-Reset": str(self.too_many_until)}))
        headers = dict(limit, **{"X-Rate-Limit-Remaining": "599",
                                 "X-Rate-Limit-Reset": str(int(time.time()) + 60)})
        wanted = urllib.parse.unquote(path[len(prefix):]).lower()
        user = self.users.get(wanted) or next(
            (u for u in self.users.values() if u[1].lower() == wanted), None)
        if user is None:
            return error(404, "E0000007", "Not found: Resource not found: %s (User)" % wanted,
                         headers)
        login, uid = user
        return 200, {"id": uid, "status": "ACTIVE", "created": "2024-01-01T00:00:00.000Z",
                     "profile": {"login": login, "email": login}, "_links": {}}, headers

    def toml(self, workdir, tenant):
        """The tenant's `directory` table, its token and CA in files beside
        the config in `workdir` (relative, as an operator writes them)."""
        token, ca = workdir / ("%s-okta-token" % tenant), workdir / ("%s-okta-ca.pem" % tenant)
        token.write_text(("00aNoThEr-tOkEn" if self.error == "denied" else OKTA_TOKEN) + "\n",
                         encoding="utf-8")
        shutil.copyfile(self.ca_file, ca)
        return "{ url = %s, token_file = %s, ca_file = %s }" % (
            toml_string(self.url), toml_string(token.name), toml_string(ca.name))

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def closed_port():
    """A loopback port nobody listens on (bound, then released)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unsupported(case):
    """What of the case this runner cannot reproduce: a store failing other
    than by being unreachable, a directory timing out (a deadline per
    request; the native tests check it), claims seeded into a store that is
    down."""
    missing = []
    store = case.get("store") or "ok"
    if store not in ("ok", "unavailable"):
        missing.append("store %s" % store)
    if store == "unavailable" and case.get("claims"):
        missing.append("claims in a store that is down")
    error = case.get("directory_error")
    if error is not None and error not in FakeOkta.ERRORS:
        missing.append("directory_error %s" % error)
    return missing


# Characters chosen to hit every branch of the normalisation, and the places
# where Python's and JavaScript's Unicode helpers differ from Rust's.
POOL = list("aZ09 -_.'\u2019@+/\téßÆøŁĳИ李😀\u0301\x00\"\\ǅİ－ａ·‐\xa0ŉſ") + [
    "\x85", "\ufeff", "\x1c", "\u212a", "\u1e9e", "\uff21", "\u2028", "\u03a3", "\u01c8",
    "\ufb01", "\u2126", "\u1fbc", "`", "\u00b4", "\u02bc", "\u2212", "\u2027", "Ș", "ǖ", "ə",
]


def random_cases(n, seed):
    import random
    rng = random.Random(seed)

    def name():
        return "".join(rng.choice(POOL) for _ in range(rng.randrange(0, 40)))

    def odd_value():
        return rng.choice([
            None, True, rng.randrange(-10**6, 10**6), rng.choice([1.0, 2.5, 1e21, 1e-7, -0.5, 1e300]),
            2**64 - 1, [name(), 1, 1.5, None], {"k": [name(), {"n": None}]}, name(), "  ",
        ])

    cases = []
    for i in range(n):
        app, user = OrderedDict(), OrderedDict()
        for attr in ("firstName", "middleName", "lastName"):
            where = rng.randrange(5)
            if where == 1:
                app[attr] = None
            elif where == 2:
                app[attr] = name()
            elif where == 3:
                user[attr] = name()
            elif where == 4:
                app[attr] = odd_value()
        if rng.randrange(2):
            app["externalId"] = odd_value()
        for _ in range(rng.randrange(4)):
            app[name() or "x"] = odd_value()
        login = "%s@%s" % (name(), rng.choice(["example.com", "Ex.ORG", "b@c.d"]))
        if rng.randrange(20) == 0:
            login = rng.choice([name(), 42, None, name() + "@"])
        if login is not None:
            user["login"] = login
        request = json.loads(json.dumps(json.load(open(HERE / "01-okta-sample.json"),
                                                  object_pairs_hook=OrderedDict)["request"]),
                             object_pairs_hook=OrderedDict)
        request["eventId"] = "random-%d-%d" % (seed, i)
        request["data"]["context"]["conflicts"] = ["login"] if rng.randrange(10) else []
        request["data"]["appUser"]["profile"] = app
        request["data"]["user"]["profile"] = user
        cases.append((pathlib.Path("random-%d" % i), OrderedDict(
            [("name", "random %d (seed %d)" % (i, seed)), ("settings", {}), ("request", request)])))
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plugins", nargs="+", metavar="NAME=PLUGIN.wasm")
    parser.add_argument("--hookbox", default=os.environ.get("HOOKBOX_BIN")
                        or str(REPO / "target" / "release" / "hookbox"))
    parser.add_argument("--logs", action="store_true",
                        help="also compare plugin log lines with the first plugin's")
    parser.add_argument("--write-expected", action="store_true",
                        help="rewrite each case's expected answer from the one plugin given")
    parser.add_argument("--only", help="run only cases whose file name contains this")
    parser.add_argument("--differential", type=int, metavar="N",
                        help="run N random requests and compare plugins with the first one")
    parser.add_argument("--seed", type=int, default=1, help="seed for --differential")
    args = parser.parse_args()

    plugins = []
    for spec in args.plugins:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = pathlib.Path(spec).stem, spec
        plugins.append((name, pathlib.Path(path).resolve()))
    if args.write_expected and len(plugins) != 1:
        parser.error("--write-expected takes exactly one plugin (the Rust reference)")

    if args.differential and (args.write_expected or len(plugins) < 2):
        parser.error("--differential needs two plugins or more, and no --write-expected")
    cases = random_cases(args.differential, args.seed) if args.differential else load_cases()
    if args.only:
        cases = [(p, c) for p, c in cases if args.only in p.name]
    event_ids = [c["request"]["eventId"] for _, c in cases]
    if len(set(event_ids)) != len(event_ids):
        print("warning: cases share event ids; log comparison may mix them", file=sys.stderr)
    # Two hosts per plugin: one on the embedded store, and one whose store is
    # a Redis nobody listens on for the cases with `store: "unavailable"`.
    tenants = {False: OrderedDict(), True: OrderedDict()}
    seed = []
    for i, (_, case) in enumerate(cases):
        # Random requests share one tenant: every plugin gets them in the same
        # order, so a shared store still gives comparable answers.
        tenant = "c0" if args.differential else "c%d" % i
        case["_tenant"] = tenant
        case["_down"] = case.get("store") == "unavailable"
        if unsupported(case):
            continue
        tenants[case["_down"]][tenant] = case.get("settings") or {}
        for key, owner in (case.get("claims") or {}).items():
            seed.append((tenant, key, owner))

    results = {}  # plugin name -> {case name: (ok, detail)}
    logs = {}
    failed = False
    for name, plugin in plugins:
        workdir = pathlib.Path(tempfile.mkdtemp(prefix="hookbox-conformance-"))
        hosts, fakes = {}, {}
        try:
            # A fake Okta of its own per directory case (its own rate-limit state).
            for _, case in cases:
                if case.get("directory") is not None and not unsupported(case):
                    fakes[case["_tenant"]] = FakeOkta(
                        workdir, "okta-%s-" % case["_tenant"], case["directory"],
                        case.get("directory_error"))
            try:
                for down, group in tenants.items():
                    if not group:
                        continue
                    hostdir = workdir / ("down" if down else "up")
                    hostdir.mkdir()
                    make_cert(hostdir)
                    unreachable = ['backend = "redis"',
                                   'url = "redis://127.0.0.1:%d/0"' % closed_port()]
                    hosts[down] = Host(args.hookbox, plugin, group, hostdir,
                                       None if down else seed, fakes,
                                       unreachable if down else None)
                for down, host in hosts.items():
                    print("%s: %s, %d bytes, host%s ready in %.2f s (%d tenants compiled)"
                          % (name, plugin, plugin.stat().st_size,
                             " (store unreachable)" if down else "", host.startup_seconds,
                             len(tenants[down])))
                results[name] = {}
                times = []
                for path, case in cases:
                    missing = unsupported(case)
                    if missing:
                        print("  SKIP %s (needs %s in the host runner; checked natively)"
                              % (case["name"], ", ".join(missing)))
                        continue
                    host = hosts[case["_down"]]
                    status, body, elapsed = host.post(case["_tenant"], case["request"])
                    times.append(elapsed)
                    body = strip_plugin_key(body) if isinstance(body, dict) else body
                    if args.write_expected:
                        case["expected"] = body
                        saved = OrderedDict(
                            (k, v) for k, v in case.items() if not k.startswith("_"))
                        with open(path, "w", encoding="utf-8") as f:
                            json.dump(saved, f, ensure_ascii=False, indent=2)
                            f.write("\n")
                        print("  wrote %s: %s" % (path.name, ordered(body)))
                        continue
                    if args.differential:
                        bodies = case.setdefault("bodies", [])
                        bodies.append(body)
                        expected = bodies[0]
                    else:
                        expected = case["expected"]
                    ok = status == 200 and ordered(body) == ordered(expected)
                    detail = "" if ok else "status %s, got %s, expected %s" % (
                        status, ordered(body), ordered(expected))
                    results[name][case["name"]] = (ok, detail)
                    failed |= not ok
                    if not ok or not args.differential:
                        print("  %-4s %s%s" % ("PASS" if ok else "FAIL", case["name"],
                                               "" if ok else "\n       " + detail))
                if times:
                    times.sort()
                    print("  round trip per case: median %.1f ms, max %.1f ms"
                          % (1000 * times[len(times) // 2], 1000 * times[-1]))
            finally:
                logs[name] = {}
                for host in hosts.values():
                    host.stop()
                    logs[name].update(host.plugin_logs())
        finally:
            for fake in fakes.values():
                fake.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    if args.logs and len(plugins) > 1:
        reference = plugins[0][0]
        for name, _ in plugins[1:]:
            for _, case in cases:
                event = case["request"]["eventId"]
                want, got = logs[reference].get(event, []), logs[name].get(event, [])
                ok = want == got
                failed |= not ok
                if ok and args.differential:
                    continue
                print("  logs %-4s %s vs %s (%d lines): %s%s" % (
                    "PASS" if ok else "FAIL", name, reference, len(want), case["name"],
                    "" if ok else " got %r, expected %r" % (got, want)))
    if not args.write_expected:
        total = sum(len(r) for r in results.values())
        passed = sum(ok for r in results.values() for ok, _ in r.values())
        print("%d/%d case runs passed" % (passed, total))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
