"""hookbox's login-conflict resolver, in plain Python (no WIT, no wasm).

A line-for-line port of the Rust reference resolver (`plugins/login-conflict`),
whose README is the specification: when Okta reports a conflict on `login`,
answer a new login that is valid, claimed in hookbox's claim store (and free in
the tenant's Okta directory when it has one), and the same for the same user on
a retry, a re-run or a restart; and, as an event handler, record the logins
Okta refused as not unique.

This module knows nothing of the component bindings, so it runs under plain
`python3 -m unittest`; `app.py` is the glue that converts the WIT types.

Data shapes used here:

- a value is a tuple `(kind, payload)`, kind one of `null` (payload `None`),
  `boolean` (bool), `integer` (int), `float` (float), `text` (str),
  `array` (list of scalar tuples, kinds `null`..`text`), `json` (str: JSON text);
- a profile is a list of `(name, value)` pairs in the order Okta sent them,
  or any object with `get(name)` (the first such attribute's value, or None)
  and iteration over its pairs: `app.py` passes a view of the WIT list that
  converts only the values the resolver reads;
- the host is any object with `setting(key) -> str | None`,
  `log(level, message)` (level: `"trace"`, `"debug"`, `"info"`, `"warn"`, `"error"`),
  the claim store `claim(key, owner) -> "claimed" | "already-yours" | "taken"`,
  `owner_of(key) -> str | None`, `release(key, owner) -> bool` (each raising
  `StoreError(kind)`), and the directory `find_user(login) -> str | None`
  (raising `DirectoryError(kind)`; kind `not-configured` without a directory).

The answer depends only on the request, the settings and the claim store: no
clock, no randomness, no dict-order dependence.
"""

from dataclasses import dataclass, field
from operator import itemgetter
from typing import List, Optional, Tuple

#: The longest local part an email address may have (RFC 5321).
MAX_LOCAL_PART = 64

#: Suffix rounds after round 0 (a round is skipped only when another user holds it).
MAX_ROUNDS = 16

#: Identities up to this many UTF-8 bytes are claim owners as they are; longer ones by hash.
MAX_OWNER_IDENTITY = 480

#: The longest key or owner the claim store accepts, in bytes.
MAX_KEY = 512

OWNER_KEY_PREFIX = "owner:"
OKTA_OWNER_PREFIX = "okta:"


@dataclass
class Request:
    """The parts of one import request the resolver reads."""

    app_user: List[Tuple[str, tuple]] = field(default_factory=list)
    user: List[Tuple[str, tuple]] = field(default_factory=list)
    conflicts: List[str] = field(default_factory=list)
    #: The matched Okta user (`data.user.id`), if any.
    user_id: Optional[str] = None


@dataclass
class Response:
    """A successful answer: the new login (None: no commands) and the debug context."""

    login: Optional[str] = None
    debug_context: List[Tuple[str, str]] = field(default_factory=list)


class ResolveError(Exception):
    """The plugin's error: its message becomes Okta's `errorSummary`."""


class StoreError(Exception):
    """A claim-store call failed; `kind` is `unavailable`, `timeout` or `invalid`."""

    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind


class DirectoryError(Exception):
    """A directory lookup failed; `kind` is `not-configured`, `unavailable`,
    `rate-limited`, `timed-out` or `denied`."""

    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind


@dataclass
class SyncEvent:
    """The parts of an app-user sync event (`application.provision.user.sync`) the handler reads."""

    uuid: str = ""
    okta_user_id: Optional[str] = None
    application_id: Optional[str] = None
    app_user_alternate_id: Optional[str] = None
    debug_data: List[Tuple[str, str]] = field(default_factory=list)


def get(profile, name):
    """The value of the first attribute `name`, or None when the profile lacks it."""
    if type(profile) is not list:
        return profile.get(name)  # a view with its own lookup (app.py's)
    for attr, value in profile:
        if attr == name:
            return value
    return None


def get_str(profile, name):
    """The text of attribute `name`; None when absent or not a JSON string."""
    value = get(profile, name)
    if value is not None and value[0] == "text":
        return value[1]
    return None


# Rust's `char::is_whitespace`: the Unicode White_Space property. (Python's
# `str.isspace` also accepts U+001C..U+001F; JavaScript's `trim` differs too.)
_WHITE_SPACE_CHARS = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_WHITE_SPACE = frozenset(_WHITE_SPACE_CHARS)
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_APOSTROPHES = frozenset("'\u2019\u2018\u02bc`\u00b4")
_EXTRA_SEPARATORS = frozenset(
    "\u2010\u2011\u2012\u2013\u2014\u2015\u00b7\u2027\u2212"
)


def is_blank(text):
    """Rust's `text.trim().is_empty()`."""
    # Stripping White_Space from both ends leaves nothing iff every character is one.
    return not text.strip(_WHITE_SPACE_CHARS)


def _table():
    table = {}
    for letters, ascii_ in [
        # Latin-1 Supplement.
        ("àáâãäå", "a"), ("æ", "ae"), ("ç", "c"), ("èéêë", "e"), ("ìíîï", "i"),
        ("ð", "d"), ("ñ", "n"), ("òóôõöø", "o"), ("ùúûü", "u"), ("ýÿ", "y"),
        ("þ", "th"), ("ß", "ss"),
        # Latin Extended-A.
        ("āăą", "a"), ("ćĉċč", "c"), ("ďđ", "d"), ("ēĕėęě", "e"), ("ĝğġģ", "g"),
        ("ĥħ", "h"), ("ĩīĭįı", "i"), ("ĳ", "ij"), ("ĵ", "j"), ("ķĸ", "k"),
        ("ĺļľŀł", "l"), ("ńņňŉŋ", "n"), ("ōŏő", "o"), ("œ", "oe"), ("ŕŗř", "r"),
        ("śŝşšſ", "s"), ("ţťŧ", "t"), ("ũūŭůűų", "u"), ("ŵ", "w"), ("ŷ", "y"),
        ("źżž", "z"),
        # Common Latin Extended-B letters: Romanian, pinyin, Vietnamese, Croatian.
        ("ș", "s"), ("ț", "t"), ("ǎ", "a"), ("ǐ", "i"), ("ǒơ", "o"), ("ǔǖǘǚǜư", "u"),
        ("ƒ", "f"), ("ǆ", "dz"), ("ǉ", "lj"), ("ǌ", "nj"), ("ə", "e"),
    ]:
        for letter in letters:
            table[letter] = ascii_
    # Fullwidth forms, as typed with CJK input methods.
    for i in range(26):
        table[chr(0xFF41 + i)] = chr(ord("a") + i)
    for i in range(10):
        table[chr(0xFF10 + i)] = chr(ord("0") + i)
    return table


#: The ASCII spelling of lowercase Latin letters with diacritics (and fullwidth Latin).
TRANSLITERATION = _table()


def _contribution(char):
    """What one character of a name contributes: its ASCII piece, " " for a
    separator, None when it is dropped."""
    out = []
    # Rust lowercases char by char (`char::to_lowercase`, no context).
    for c in char.lower():
        if c in _ALNUM:
            out.append(c)
        elif c in _APOSTROPHES:
            pass  # O'Brien is one name: obrien, not o-brien.
        elif c in _WHITE_SPACE or c in _ASCII_PUNCTUATION or c in _EXTRA_SEPARATORS:
            out.append(" ")
        else:
            # Other scripts, emoji, combining marks: no faithful ASCII form.
            out.append(TRANSLITERATION.get(c, ""))
    return "".join(out) or None


class _ContributionTable(dict):
    """`str.translate` table of `_contribution` by code point. The ranges that
    matter are precomputed at import (free per call: componentize-py snapshots
    the initialised module); any other character is classified when met, not
    stored, so the table never grows."""

    def __missing__(self, code_point):
        return _contribution(chr(code_point))


_CONTRIBUTIONS = _ContributionTable(
    (cp, _contribution(chr(cp)))
    for start, end in [
        (0x0000, 0x0300),  # ASCII, Latin-1, Latin Extended-A and -B, IPA, modifiers (U+02BC)
        (0x1E00, 0x1F00),  # Latin Extended Additional (ẞ lowercases to ß)
        (0x2000, 0x2070),  # General Punctuation: spaces, dashes, quotes
        (0x2100, 0x2150),  # Letterlike Symbols (Kelvin and Ångström signs)
        (0x2212, 0x2213),  # minus sign
        (0x3000, 0x3001),  # ideographic space
        (0xFF00, 0xFF60),  # fullwidth ASCII forms
    ]
    for cp in range(start, end)
)


def normalise_name(text):
    """One name as a piece of an email local part: `[a-z0-9-]`, no leading,
    trailing or doubled `-`; empty when nothing can be kept."""
    if text.isascii() and text.isalnum():
        return text.lower()  # the common case: nothing to drop or separate
    # Each character becomes its piece, a space (separator) or nothing; then
    # split() drops leading and trailing separators and collapses runs, and the
    # pieces between them are joined with one `-`. The pieces are `[a-z0-9]`,
    # so the only spaces are separators. All of it runs in C, where a Python
    # loop over the characters costs dozens of bytecodes per character.
    return "-".join(text.translate(_CONTRIBUTIONS).split())


def normalise_login_base(local):
    """The conflicting login's local part normalised piece by piece between its dots."""
    return ".".join(p for p in (normalise_name(s) for s in local.split(".")) if p)


# Rust's `eq_ignore_ascii_case` folds only ASCII letters (`str.lower` would
# also fold e.g. the Kelvin sign).
_ASCII_LOWER = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
)


def _ascii_lower(text):
    return text.translate(_ASCII_LOWER)


def assemble(pieces, suffix):
    """Joins `pieces` with `.` and appends `.suffix`, cutting the pieces (never
    the suffix) so the result fits in MAX_LOCAL_PART bytes."""
    head = ".".join(pieces)
    budget = MAX_LOCAL_PART - (len(suffix) + 1 if suffix is not None else 0)
    # The pieces are ASCII, so characters are bytes.
    encoded = head.encode("utf-8")
    if len(encoded) > budget:
        head = encoded[:budget].decode("utf-8", "ignore").rstrip(".-")
    if suffix is not None:
        if head:
            head += "."
        head += suffix
    return head


# serde_json's escapes: `"`, `\`, the short forms, other controls as `\u00xx`;
# everything else (non-ASCII included) is written as it is.
_JSON_ESCAPES = {cp: "\\u%04x" % cp for cp in range(0x20)}
_JSON_ESCAPES.update({
    ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r",
    ord("\t"): "\\t", ord("\b"): "\\b", ord("\f"): "\\f",
})


def _json_string(text):
    return '"' + text.translate(_JSON_ESCAPES) + '"'


def rust_float(f):
    """An f64 as Rust's `Display` writes it: shortest round-trip digits,
    never an exponent, no `.0` for integral values; non-finite → `null`."""
    if f != f or f in (float("inf"), float("-inf")):
        return "null"
    r = repr(f)  # shortest round-trip digits, like Rust's
    sign = ""
    if r.startswith("-"):
        sign, r = "-", r[1:]
    mantissa, _, exp = r.partition("e")
    whole, _, frac = mantissa.partition(".")
    if frac == "0":
        frac = ""
    digits = (whole + frac).lstrip("0")
    point = len(whole) + (int(exp) if exp else 0)  # digits before the point
    if not digits:
        return sign + "0"
    # Leading zeros stripped from `whole` move the point too.
    point -= len(whole + frac) - len((whole + frac).lstrip("0"))
    digits = digits.rstrip("0") or "0"
    if point <= 0:
        return sign + "0." + "0" * (-point) + digits
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return sign + digits[:point] + "." + digits[point:]


def to_json(value):
    """A value as compact JSON text, exactly as the Rust SDK's `Value::to_json`."""
    kind, payload = value
    # Most frequent kinds first.
    if kind == "text":
        return _json_string(payload)
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true" if payload else "false"
    if kind == "integer":
        return str(payload)
    if kind == "float":
        return rust_float(payload)
    if kind == "array":
        return "[" + ",".join(to_json(item) for item in payload) + "]"
    if kind == "json":
        return payload
    raise ValueError("unknown value kind %r" % kind)


def identity(request, unique_attr):
    """What identifies the imported user, as text to hash."""
    value = get(request.app_user, unique_attr)
    if value is not None:
        kind, payload = value
        if kind == "text" and not is_blank(payload):
            return payload
        if kind not in ("null", "text"):
            return to_json(value)
    # Sorted by name as Rust sorts strings (by code point); `sorted` is stable.
    attributes = sorted(request.app_user, key=_NAME)
    return (
        "{"
        + ",".join([_json_string(name) + ":" + to_json(v) for name, v in attributes])
        + "}"
    )


_NAME = itemgetter(0)


FNV_OFFSET_BASIS = 0xCBF29CE484222325
FNV_PRIME = 0x00000100000001B3
_MASK = (1 << 64) - 1


def fnv1a64(data, h=FNV_OFFSET_BASIS):
    """64-bit FNV-1a of `data` (bytes), continuing from `h`."""
    # The low 64 bits of a product depend only on the low 64 bits of its
    # factors, and `^ b` (b < 256) only touches the low byte, so masking once
    # per four bytes gives the same result as masking after every byte, with
    # fewer bytecodes. Constants in locals: no global lookups in the loop.
    prime, mask = FNV_PRIME, _MASK
    quads = iter(data)
    for b0, b1, b2, b3 in zip(quads, quads, quads, quads):
        h = (h ^ b0) * prime
        h = (h ^ b1) * prime
        h = (h ^ b2) * prime
        h = ((h ^ b3) * prime) & mask
    for b in data[len(data) & ~3:]:  # the last 0-3 bytes
        h = ((h ^ b) * prime) & mask
    return h


def identity_suffix(identity_text, round_):
    """Six hex digits: the top 24 bits of FNV-1a(identity [+ 0 byte + round])."""
    data = identity_text.encode("utf-8")
    if round_ > 0:
        data += b"\x00" + str(round_).encode("ascii")
    return "%06x" % (fnv1a64(data) >> 40)


def _setting(host, key, default):
    # A blank setting can only be a mistake: it means "use the default".
    value = host.setting(key)
    if value is None or is_blank(value):
        return default
    return value


def _name_part(request, attr):
    for profile in (request.app_user, request.user):
        text = get_str(profile, attr)
        if text is not None:
            name = normalise_name(text)
            if name:
                return name
    return None


def _rust_trim(text):
    return text.strip(_WHITE_SPACE_CHARS)


def candidates(request, conflict_local, ident, first_attr="firstName",
               middle_attr="middleName", last_attr="lastName"):
    """[(local, rule, suffixed)] in the order tried (see the Rust reference)."""
    first = _name_part(request, first_attr)
    middle = _name_part(request, middle_attr)
    last = _name_part(request, last_attr)
    if first is not None and last is not None:
        primary = ("middle-name", [first, middle, last]) if middle is not None else None
        suffix_pieces, suffix_rule = [first, last], "hashed-suffix"
    else:
        # Nothing usable anywhere: a fixed word keeps the login readable.
        base = normalise_login_base(conflict_local) or "user"
        primary = ("login-base-middle-name", [base, middle]) if middle is not None else None
        suffix_pieces, suffix_rule = [base], "login-base-hashed-suffix"
    out = []
    if primary is not None:
        out.append((assemble(primary[1], None), primary[0], False))
    for round_ in range(MAX_ROUNDS + 1):
        rule = suffix_rule + ("+rehashed" if round_ > 0 else "")
        out.append((assemble(suffix_pieces, identity_suffix(ident, round_)), rule, True))
    # Rust's `eq_ignore_ascii_case`: only ASCII letters fold.
    folded = _ascii_lower(conflict_local)
    return [c for c in out if _ascii_lower(c[0]) != folded]


def owner_for(ident):
    """`id:<identity>`, or `id#<16 hex of FNV-1a 64>` over 480 UTF-8 bytes."""
    data = ident.encode("utf-8")
    if len(data) <= MAX_OWNER_IDENTITY:
        return "id:" + ident
    return "id#%016x" % fnv1a64(data)


def login_key(login):
    """The claim key of a login: ASCII letters lowercased."""
    return _ascii_lower(login)


class _DirectoryUse:
    """The directory as one request uses it: not asked again after a failure."""

    def __init__(self, host):
        self.host = host
        self.stopped = None
        self.used = False

    def held_by_other(self, login, me):
        if self.stopped is not None:
            return False
        self.used = True
        try:
            found = self.host.find_user(login)
        except DirectoryError as e:
            if e.kind != "not-configured":
                self.host.log("warn", "directory lookup failed (%s): going on with the claim store alone"
                              % e.kind)
            self.stopped = e.kind
            return False
        return found is not None and found != me

    def status(self):
        if self.stopped == "not-configured":
            return None
        if self.stopped is not None:
            return self.stopped
        return "checked" if self.used else None


_HELD = ("claimed", "already-yours")


def _choose(request, host, cands, domain, owner, directory, conflict_local):
    owner_key = OWNER_KEY_PREFIX + owner
    me = request.user_id
    recorded = host.owner_of(owner_key)
    if recorded is not None:
        local, at, d = recorded.rpartition("@")
        fits = bool(at) and _ascii_lower(d) == _ascii_lower(domain) and \
            _ascii_lower(local) != _ascii_lower(conflict_local)
        if fits and not directory.held_by_other(recorded, me):
            result = host.claim(login_key(recorded), owner)
            if result in _HELD:
                rule = "recorded"
                folded = _ascii_lower(recorded)
                for c_local, c_rule, _ in cands:
                    if _ascii_lower("%s@%s" % (c_local, domain)) == folded:
                        rule = c_rule
                        break
                return recorded, rule, result
        host.log("debug", "the login recorded for this user no longer fits: choosing again")
    for c_local, c_rule, _ in cands:
        login = "%s@%s" % (c_local, domain)
        if directory.held_by_other(login, me):
            continue
        result = host.claim(login_key(login), owner)
        if result not in _HELD:
            continue
        _record_owner(host, owner_key, recorded, login)
        return login, c_rule, result
    return None


def _record_owner(host, owner_key, recorded, login):
    try:
        if recorded is not None and recorded != login:
            host.release(owner_key, recorded)
        result = host.claim(owner_key, login)
    except StoreError as e:
        host.log("warn", "the login chosen could not be recorded for this user (%s)" % e.kind)
        return
    if result not in _HELD:
        host.log("warn", "the login chosen could not be recorded for this user (record held)")


def resolve(request, host):
    """The whole resolver: a Response, or raises ResolveError(summary)."""
    if "login" not in request.conflicts:
        host.log("debug", "no login conflict: nothing to do")
        return Response()
    login = get_str(request.user, "login")
    if login is None:
        host.log("debug", "login conflict without a text login in the Okta profile")
        raise ResolveError(
            "login-conflict: the Okta user profile has no login to take the domain from"
        )
    conflict_local, at, domain = login.rpartition("@")
    if not at or not domain:
        host.log("debug", "login conflict on a login without a domain")
        raise ResolveError("login-conflict: the conflicting login has no domain")

    first_attr = _setting(host, "first_name_attribute", "firstName")
    middle_attr = _setting(host, "middle_name_attribute", "middleName")
    last_attr = _setting(host, "last_name_attribute", "lastName")
    ident = identity(request, _setting(host, "unique_attribute", "externalId"))
    on_store_error = _rust_trim(_setting(host, "on_store_error", "fallback"))
    cands = candidates(request, conflict_local, ident, first_attr, middle_attr, last_attr)
    owner = owner_for(ident)
    directory = _DirectoryUse(host)

    try:
        chosen = _choose(request, host, cands, domain, owner, directory, conflict_local)
        if chosen is None:
            host.log("debug", "every candidate is taken")
            raise ResolveError("login-conflict: every candidate login is taken")
        new_login, rule, claim = chosen
    except StoreError as e:
        if on_store_error == "error":
            host.log("warn", "claim store failed (%s): answering an error" % e.kind)
            raise ResolveError(
                "login-conflict: the claim store is unavailable, so no login could be reserved"
            )
        host.log("warn", "claim store failed (%s): answering the stateless hashed-suffix login"
                 % e.kind)
        for c_local, c_rule, suffixed in cands:
            if suffixed and not directory.held_by_other("%s@%s" % (c_local, domain),
                                                        request.user_id):
                new_login, rule, claim = "%s@%s" % (c_local, domain), c_rule, "unavailable"
                break
        else:
            raise ResolveError("login-conflict: every candidate login is taken")

    host.log("debug", "login %s by rule %s" % (claim, rule))
    debug = [("resolver", "login-conflict"), ("rule", rule), ("claim", claim)]
    status = directory.status()
    if status is not None:
        debug.append(("directory", status))
    return Response(login=new_login, debug_context=debug)


def is_login_uniqueness_error(event):
    """`error_code` starting with `notUnique` and `error_field` `login` (ASCII case ignored)."""
    data = dict(reversed(event.debug_data))  # the first entry of a key wins, as in Rust
    code = data.get("error_code", "")
    field_ = data.get("error_field", "")
    return _ascii_lower(code[:9]) == "notunique" and _ascii_lower(_rust_trim(field_)) == "login"


def failed_login(event):
    """The debug-data entry `login`, else the app user's alternate id; None if neither."""
    data = dict(reversed(event.debug_data))
    login = data.get("login")
    if login is None:
        login = event.app_user_alternate_id
    if login is None:
        return None
    login = _rust_trim(login)
    return login or None


def handle(event, host):
    """The event handler: `event` is a SyncEvent, or None for any other event.
    Raises ResolveError(reason) when the claim store fails (the host retries)."""
    if not isinstance(event, SyncEvent):
        host.log("debug", "event ignored: not an app-user sync")
        return
    if not is_login_uniqueness_error(event):
        host.log("debug", "sync event without a login uniqueness error: nothing to do")
        return
    okta_user = event.okta_user_id
    if okta_user is not None and is_blank(okta_user):
        okta_user = None
    app = event.application_id if event.application_id is not None else "-"
    ids = "event %s, Okta user %s, app %s" % (event.uuid, okta_user or "-", app)
    login = failed_login(event)
    if login is None:
        host.log("warn", "login not unique (%s), but the event names no login: nothing recorded"
                 % ids)
        return
    key = login_key(login)
    if len(key.encode("utf-8")) > MAX_KEY or key.startswith(OWNER_KEY_PREFIX):
        host.log("warn", "login not unique (%s), but it cannot be a claim key: nothing recorded"
                 % ids)
        return
    if okta_user is not None:
        owner = OKTA_OWNER_PREFIX + okta_user
    else:
        owner = OKTA_OWNER_PREFIX + "event:" + event.uuid
    try:
        result = host.claim(key, owner)
        if result == "claimed":
            host.log("info", "login not unique (%s): recorded as taken" % ids)
        elif result == "already-yours":
            host.log("debug", "login not unique (%s): already recorded" % ids)
        else:
            holder = host.owner_of(key)
            if holder is not None and not holder.startswith(OKTA_OWNER_PREFIX):
                host.release(key, holder)
                host.claim(key, owner)
                host.log("info", "login not unique (%s): taken back from the import it was handed to"
                         % ids)
            else:
                host.log("debug", "login not unique (%s): already recorded" % ids)
    except StoreError as e:
        raise ResolveError(
            "login-conflict: the claim store failed (%s) while recording a login Okta refused"
            % e.kind
        )
