"""Okta request JSON -> the resolver's request, as the hookbox host decodes it
(host/src/hook/decode.rs), so the conformance cases can run natively."""

import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "src"))

import login_conflict  # noqa: E402

I64_MIN, I64_MAX, U64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


def _ryu(f):
    """A float as serde_json (ryu) writes it inside JSON text: `1.0`, `1e21`, `1e-7`."""
    if not math.isfinite(f):
        return "null"
    text = login_conflict.rust_float(f)  # positional, shortest digits
    sign = "-" if text.startswith("-") else ""
    text = text.lstrip("-")
    whole, _, frac = text.partition(".")
    digits = (whole + frac).lstrip("0")
    if not digits:
        return sign + "0.0"
    point = len(whole) - (len(whole + frac) - len(digits))
    digits = digits.rstrip("0")
    if 0 < point <= 16:
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits)) + ".0"
        return sign + digits[:point] + "." + digits[point:]
    if -5 < point <= 0:
        return sign + "0." + "0" * (-point) + digits
    exp = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return sign + mantissa + "e" + str(exp)


def _json_text(v):
    """serde_json's compact rendering (key order kept)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        # serde_json reads integers beyond u64/i64 as floats.
        return str(v) if I64_MIN <= v <= U64_MAX else _ryu(float(v))
    if isinstance(v, float):
        return _ryu(v)
    if isinstance(v, str):
        return login_conflict._json_string(v)
    if isinstance(v, Obj):
        return "{" + ",".join(login_conflict._json_string(k) + ":" + _json_text(x) for k, x in v) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_json_text(i) for i in v) + "]"
    raise TypeError(type(v))


class Obj(list):
    """A JSON object as its (key, value) pairs, in order."""


def _scalar(v):
    if v is None:
        return ("null", None)
    if isinstance(v, bool):
        return ("boolean", v)
    if isinstance(v, int):
        if I64_MIN <= v <= I64_MAX:
            return ("integer", v)
        # A u64 above i64::MAX stays JSON text; beyond u64, serde_json reads a float.
        return None if 0 <= v <= U64_MAX else ("float", float(v))
    if isinstance(v, float):
        return ("float", v)
    if isinstance(v, str):
        return ("text", v)
    return None


def value(v):
    s = _scalar(v)
    if s is not None:
        return s
    if isinstance(v, list) and not isinstance(v, Obj):
        items = [_scalar(i) for i in v]
        if all(i is not None for i in items):
            return ("array", items)
    return ("json", _json_text(v))


def _object(pairs):
    # serde_json (preserve_order): a repeated key keeps its first position, last value.
    obj = Obj()
    for k, v in pairs:
        for i, (k2, _) in enumerate(obj):
            if k2 == k:
                obj[i] = (k, v)
                break
        else:
            obj.append((k, v))
    return obj


def parse(text):
    return json.loads(text, object_pairs_hook=_object)


def decode(raw):
    """A parsed Okta request (see `parse`) -> login_conflict.Request."""
    data = dict(dict(raw)["data"])
    context = dict(data.get("context") or [])
    return login_conflict.Request(
        app_user=[(k, value(v)) for k, v in dict(data["appUser"])["profile"]],
        user=[(k, value(v)) for k, v in dict(data["user"])["profile"]],
        conflicts=list(context.get("conflicts") or []),
        user_id=dict(data["user"]).get("id"),
    )


def answer_body(request, host):
    """The body the host answers, minus `debugContext.hookboxPlugin`, as ordered pairs."""
    try:
        response = login_conflict.resolve(request, host)
    except login_conflict.ResolveError as e:
        return Obj([("error", Obj([("errorSummary", str(e))]))])
    body = Obj()
    if response.login is not None:
        body.append(("commands", [Obj([
            ("type", "com.okta.user.profile.update"),
            ("value", Obj([("login", response.login)])),
        ])]))
    if response.debug_context:
        body.append(("debugContext", Obj(response.debug_context)))
    return body


def canonical(v):
    """Order-preserving canonical text of a parsed JSON value (Obj or plain)."""
    return _json_text(v)
