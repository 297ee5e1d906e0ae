"""Native tests of the Python resolver: the Rust reference's unit tests, ported,
and every shared conformance case (`tests/conformance/*.json`).

Run from plugins/login-conflict-py: python3 -m unittest discover -s tests
"""

import pathlib
import unittest

from okta_json import answer_body, canonical, decode, parse

import login_conflict as lc

CONFORMANCE = pathlib.Path(__file__).resolve().parents[3] / "tests" / "conformance"


class FakeHost:
    """Settings, a log, an in-memory claim store and directory (like the Rust SDK's fakes)."""

    def __init__(self, settings=None, claims=None, directory=None):
        self.settings = dict(settings or {})
        self.logs = []
        self.claims = {} if claims is None else claims  # shared when passed in
        self.store_error = None  # a kind: every store call fails
        self.directory = directory  # {lowercased login: id}, None: not configured
        self.directory_error = None
        self.lookups = 0

    def setting(self, key):
        return self.settings.get(key)

    def log(self, level, message):
        self.logs.append((level, message))

    def _store(self, *texts):
        if self.store_error is not None:
            raise lc.StoreError(self.store_error)
        for t in texts:
            if not t or len(t.encode("utf-8")) > lc.MAX_KEY:
                raise lc.StoreError("invalid")

    def claim(self, key, owner):
        self._store(key, owner)
        holder = self.claims.get(key)
        if holder is None:
            self.claims[key] = owner
            return "claimed"
        return "already-yours" if holder == owner else "taken"

    def owner_of(self, key):
        self._store(key)
        return self.claims.get(key)

    def release(self, key, owner):
        self._store(key, owner)
        if self.claims.get(key) == owner:
            del self.claims[key]
            return True
        return False

    def find_user(self, login):
        self.lookups += 1
        if self.directory is None:
            raise lc.DirectoryError("not-configured")
        if self.directory_error is not None:
            raise lc.DirectoryError(self.directory_error)
        return self.directory.get(login.lower())


def text(s):
    return ("text", s)


def conflict(login, app=(), user=()):
    return lc.Request(
        app_user=[(k, v if isinstance(v, tuple) else text(v)) for k, v in app],
        user=[("login", text(login))] + [(k, v if isinstance(v, tuple) else text(v)) for k, v in user],
        conflicts=["login"],
    )


def login_for(request, host=None):
    response = lc.resolve(request, host or FakeHost())
    assert response.debug_context[0] == ("resolver", "login-conflict")
    return response.login


def rule_of(request):
    return dict(lc.resolve(request, FakeHost()).debug_context)["rule"]


class ResolverTests(unittest.TestCase):
    def test_george_gets_his_middle_name_infixed(self):
        host = FakeHost()
        r = conflict("george.smith@example.com",
                     [("firstName", "George"), ("middleName", "Alexander"), ("lastName", "Smith")])
        response = lc.resolve(r, host)
        self.assertEqual(response.login, "george.alexander.smith@example.com")
        self.assertEqual(response.debug_context,
                         [("resolver", "login-conflict"), ("rule", "middle-name"),
                          ("claim", "claimed")])
        self.assertEqual(host.logs, [("debug", "login claimed by rule middle-name")])

    def test_fnv1a64_reference_vectors(self):
        self.assertEqual(lc.fnv1a64(b""), 0xCBF29CE484222325)
        self.assertEqual(lc.fnv1a64(b"a"), 0xAF63DC4C8601EC8C)
        self.assertEqual(lc.fnv1a64(b"foobar"), 0x85944171F73967E8)

    def test_sample_suffix(self):
        self.assertEqual(lc.identity_suffix("user221", 0), "272ed9")

    def test_names_are_normalised(self):
        cases = [
            ("Mary Ann", "mary-ann"), ("Jean-Luc", "jean-luc"), ("O'Brien", "obrien"),
            ("O\u2019Brien", "obrien"), ("d`Artagnan", "dartagnan"),
            ("  van  der   Berg ", "van-der-berg"), ("a_b.c", "a-b-c"),
            ("--Jean -- Luc--", "jean-luc"), ("José", "jose"), ("Ñuñez", "nunez"),
            ("Müller", "muller"), ("Weiß", "weiss"), ("STRAẞE", "strasse"),
            ("Ærøskøbing", "aeroskobing"), ("Œuvre", "oeuvre"), ("Łukasz", "lukasz"),
            ("Đorđe", "dorde"), ("Þór", "thor"), ("Åsa", "asa"), ("İsmail", "ismail"),
            ("Ștefan Țurcanu", "stefan-turcanu"), ("Dvořák", "dvorak"),
            ("José\u0301", "jose"), ("Zoë 😀 Smith", "zoe-smith"), ("Иван", ""), ("李", ""),
            ("李 Wei", "wei"), ("Anna 李 Maria", "anna-maria"), ("R2-D2", "r2-d2"),
            ("ＡＢＣ１", "abc1"), ("", ""), ("   ", ""), ("'", ""), ("-", ""),
            # Python's isspace() accepts U+001C..U+001F; Rust's is_whitespace does not.
            ("a\x1cb", "ab"), ("a\x85b", "a-b"), ("a\ufeffb", "ab"), ("\u212aelvin", "kelvin"),
        ]
        for given, expected in cases:
            self.assertEqual(lc.normalise_name(given), expected, given)

    def test_every_latin_1_and_extended_a_letter_is_transliterated(self):
        for cp in range(0xC0, 0x180):
            c = chr(cp)
            if not c.isalpha():
                continue
            n = lc.normalise_name(c)
            self.assertTrue(n and n.isascii() and n.isalpha() and n.islower(), (c, n))

    def test_rust_float_display(self):
        for f, s in [(1.0, "1"), (2.5, "2.5"), (-0.0, "-0"), (0.0, "0"), (1e21, "1" + "0" * 21),
                     (1e-7, "0.0000001"), (1.5e-7, "0.00000015"), (123.456, "123.456"),
                     (1e16, "10000000000000000"), (0.1, "0.1"), (-3.25, "-3.25"),
                     (float("nan"), "null"), (float("inf"), "null")]:
            self.assertEqual(lc.rust_float(f), s, f)

    def test_identity_rendering(self):
        r = lc.Request(app_user=[
            ("z", text("last")), ("externalId", ("null", None)),
            ("a", ("array", [("integer", 1), ("null", None)])), ('q"', ("float", 2.5)),
        ])
        self.assertEqual(lc.identity(r, "externalId"),
                         '{"a":[1,null],"externalId":null,"q\\"":2.5,"z":"last"}')
        self.assertEqual(lc.identity(lc.Request(app_user=[("externalId", ("integer", 221))]),
                                     "externalId"), "221")
        self.assertEqual(lc.identity(lc.Request(app_user=[("externalId", text("user221"))]),
                                     "externalId"), "user221")
        self.assertEqual(lc.identity(lc.Request(), "externalId"), "{}")

    def test_odd_name_values_count_as_absent(self):
        for odd in [("null", None), ("integer", 3), ("float", 1.5), ("boolean", True),
                    ("array", [text("Alexander")]), ("json", '{"a":"Alexander"}'),
                    text(""), text(" \t "), text("Σ")]:
            r = conflict("george.smith@example.com", [
                ("firstName", "George"), ("middleName", odd), ("lastName", "Smith"),
                ("externalId", "42")])
            self.assertEqual(login_for(r),
                             "george.smith.%s@example.com" % lc.identity_suffix("42", 0), odd)

    def test_long_names_are_cut_keeping_the_suffix(self):
        long = "Bartholomew-Maximilian " * 6
        r = conflict("x@example.com", [("firstName", long), ("lastName", long), ("externalId", "e")])
        local = login_for(r).rpartition("@")[0]
        self.assertTrue(local.endswith("." + lc.identity_suffix("e", 0)))
        self.assertLessEqual(len(local), 64)
        self.assertGreaterEqual(len(local), 63)

    def test_the_cut_never_leaves_a_dot_or_dash_at_the_end(self):
        for n in range(1, 70):
            r = conflict("x@example.com", [
                ("firstName", "a" * n), ("middleName", "b-c"),
                ("lastName", "d-e-f-g-h-i-j-k-l-m-n-o-p-q-r-s-t-u-v-w-x-y-z")])
            local = login_for(r).rpartition("@")[0]
            self.assertLessEqual(len(local), 64)
            self.assertNotIn(local[-1], ".-")
            self.assertNotIn("..", local)

    def test_the_new_login_always_differs(self):
        r = conflict("George.Alexander.Smith@example.com", [
            ("firstName", "George"), ("middleName", "Alexander"), ("lastName", "Smith"),
            ("externalId", "g1")])
        self.assertEqual(login_for(r), "george.smith.%s@example.com"
                         % lc.identity_suffix("g1", 0))
        self.assertEqual(rule_of(r), "hashed-suffix")

    def test_non_ascii_case_folding_never_matches(self):
        # Kelvin sign lowercases to 'k' in Python, but Rust's eq_ignore_ascii_case keeps it.
        r = conflict("\u212a.smith.%s@example.com" % lc.identity_suffix("1", 0), [
            ("firstName", "K"), ("lastName", "Smith"), ("externalId", "1")])
        self.assertEqual(rule_of(r), "hashed-suffix")

    def test_settings(self):
        r = conflict("g.s@example.com", [("given", "George"), ("second", "Alexander"),
                                         ("family", "Smith"), ("firstName", "Wrong")])
        host = FakeHost({"first_name_attribute": "given", "middle_name_attribute": "second",
                         "last_name_attribute": "family"})
        self.assertEqual(login_for(r, host), "george.alexander.smith@example.com")
        r = conflict("g.s@example.com", [("firstName", "George"), ("lastName", "Smith"),
                                         ("employeeNumber", "E1")])
        self.assertEqual(login_for(r, FakeHost({"unique_attribute": "employeeNumber"})),
                         "george.smith.%s@example.com" % lc.identity_suffix("E1", 0))

    def test_errors(self):
        for r in [
            lc.Request(app_user=[("firstName", text("George"))], conflicts=["login"]),
            lc.Request(user=[("login", ("integer", 42))], conflicts=["login"]),
            conflict("george.smith"),
            conflict("george.smith@"),
        ]:
            with self.assertRaises(lc.ResolveError) as e:
                lc.resolve(r, FakeHost())
            self.assertTrue(str(e.exception).startswith("login-conflict: "))

    def test_no_conflict(self):
        host = FakeHost()
        r = lc.Request(user=[("login", text("a@b.c"))], conflicts=["email"])
        self.assertEqual(lc.resolve(r, host), lc.Response())
        self.assertEqual(host.logs, [("debug", "no login conflict: nothing to do")])


def george(ext):
    return conflict("george.smith@example.com", [
        ("firstName", "George"), ("middleName", "Alexander"), ("lastName", "Smith"),
        ("externalId", ext)])


class ClaimTests(unittest.TestCase):
    def test_two_owners_with_the_same_name_get_distinct_logins(self):
        store = {}
        one = lc.resolve(george("u1"), FakeHost(claims=store))
        two = lc.resolve(george("u2"), FakeHost(claims=store))
        self.assertEqual(one.login, "george.alexander.smith@example.com")
        self.assertEqual(two.login, "george.smith.%s@example.com" % lc.identity_suffix("u2", 0))
        self.assertEqual(store["owner:id:u2"], two.login)

    def test_the_same_owner_gets_the_same_login_again(self):
        store = {}
        lc.resolve(george("u1"), FakeHost(claims=store))
        first = lc.resolve(george("u2"), FakeHost(claims=store))
        del store["george.alexander.smith@example.com"]  # an operator released it
        again = lc.resolve(george("u2"), FakeHost(claims=store))
        self.assertEqual(again.login, first.login)
        self.assertEqual(dict(again.debug_context)["claim"], "already-yours")

    def test_store_failure(self):
        host = FakeHost()
        host.store_error = "timeout"
        response = lc.resolve(george("u1"), host)
        self.assertEqual(response.login,
                         "george.smith.%s@example.com" % lc.identity_suffix("u1", 0))
        self.assertEqual(dict(response.debug_context)["claim"], "unavailable")
        self.assertIn(("warn", "claim store failed (timeout): answering the stateless "
                       "hashed-suffix login"), host.logs)
        host = FakeHost({"on_store_error": "error"})
        host.store_error = "unavailable"
        with self.assertRaises(lc.ResolveError):
            lc.resolve(george("u1"), host)

    def test_directory_skip(self):
        host = FakeHost(directory={"george.alexander.smith@example.com": "00u9"})
        response = lc.resolve(george("u1"), host)
        self.assertEqual(response.login,
                         "george.smith.%s@example.com" % lc.identity_suffix("u1", 0))
        self.assertEqual(dict(response.debug_context)["directory"], "checked")

    def test_event_handler_records_the_login(self):
        host = FakeHost()
        event = lc.SyncEvent(uuid="ev1", okta_user_id="00u5", application_id="0oa1",
                             app_user_alternate_id="George.Alexander.Smith@example.com",
                             debug_data=[("error_code", "notUniqueWithinOrg"),
                                         ("error_field", "login")])
        lc.handle(event, host)
        self.assertEqual(host.claims, {"george.alexander.smith@example.com": "okta:00u5"})
        self.assertEqual(host.logs, [("info", "login not unique (event ev1, Okta user 00u5, "
                                      "app 0oa1): recorded as taken")])
        self.assertEqual(lc.resolve(george("u1"), host).login,
                         "george.smith.%s@example.com" % lc.identity_suffix("u1", 0))
        lc.handle(None, host)
        host.store_error = "unavailable"
        with self.assertRaises(lc.ResolveError):
            lc.handle(event, host)


def conformance_host(case):
    """A FakeHost set up as a conformance case says (claims, store, directory)."""
    host = FakeHost(dict(case["settings"]), claims=dict(case.get("claims") or []))
    if case.get("store") not in (None, "ok"):
        host.store_error = case["store"]
    if case.get("directory") is not None:
        host.directory = {k.lower(): v for k, v in case["directory"]}
    host.directory_error = case.get("directory_error")
    return host


class ConformanceTests(unittest.TestCase):
    def test_every_case(self):
        paths = sorted(CONFORMANCE.glob("*.json"))
        self.assertTrue(paths, "no conformance cases in %s" % CONFORMANCE)
        for path in paths:
            with self.subTest(case=path.name):
                case = dict(parse(path.read_text(encoding="utf-8")))
                host = conformance_host(case)
                body = answer_body(decode(case["request"]), host)
                self.assertEqual(canonical(body), canonical(case["expected"]))
                if case.get("claims_after") is not None:
                    self.assertEqual(sorted(host.claims.items()),
                                     sorted(dict(case["claims_after"]).items()))


if __name__ == "__main__":
    unittest.main()
