"""The component glue: converts the WIT types to and from `login_conflict`'s.

componentize-py generates the `wit_world` package from `../../wit` (world
`import-hook`) at build time; the exported class must be named after the
exported interface, `Resolver`.
"""

from operator import attrgetter

from componentize_py_types import Err

import wit_world
from wit_world.exports import EventHandler as EventHandlerProtocol
from wit_world.exports import Resolver as ResolverProtocol
from wit_world.imports import claims as wit_claims
from wit_world.imports import directory as wit_directory
from wit_world.imports import events as wit_events
from wit_world.imports import host as wit_host
from wit_world.imports import types as wit

import login_conflict

_LEVELS = {
    "trace": wit_host.Level.TRACE,
    "debug": wit_host.Level.DEBUG,
    "info": wit_host.Level.INFO,
    "warn": wit_host.Level.WARN,
    "error": wit_host.Level.ERROR,
}

_SCALARS = {
    wit.Scalar_Null: "null",
    wit.Scalar_Boolean: "boolean",
    wit.Scalar_Integer: "integer",
    wit.Scalar_Float: "float",
    wit.Scalar_Text: "text",
}

_VALUES = {
    wit.Value_Null: "null",
    wit.Value_Boolean: "boolean",
    wit.Value_Integer: "integer",
    wit.Value_Float: "float",
    wit.Value_Text: "text",
    wit.Value_Json: "json",
}


def _scalar(s):
    kind = _SCALARS[type(s)]
    return (kind, None if kind == "null" else s.value)


def _value(v):
    if isinstance(v, wit.Value_Array):
        return ("array", [_scalar(s) for s in v.value])
    kind = _VALUES[type(v)]
    return (kind, None if kind == "null" else v.value)


_NAME = attrgetter("name")


class _Profile:
    """A WIT profile as `login_conflict` reads it (see its docstring): values
    are converted only when looked up, and names are searched in C, so a
    request pays for the few attributes the resolver reads, not for all."""

    __slots__ = ("_attributes", "_names")

    def __init__(self, attributes):
        self._attributes = attributes
        self._names = None  # built on the first lookup

    def get(self, name):
        names = self._names
        if names is None:
            names = self._names = list(map(_NAME, self._attributes))
        if name in names:
            return _value(self._attributes[names.index(name)].value)
        return None

    def __iter__(self):
        return ((a.name, _value(a.value)) for a in self._attributes)


# A tenant's settings are fixed for an instance's lifetime (see `config-get` in
# the WIT), so each is asked for once per instance: a host call is dear in
# this toolchain's glue.
_SETTINGS = {}


class _Host:
    """The host's imports, as `login_conflict` expects them."""

    @staticmethod
    def setting(key):
        try:
            return _SETTINGS[key]
        except KeyError:
            value = _SETTINGS[key] = wit_host.config_get(key)
            return value

    @staticmethod
    def log(level, message):
        wit_host.log(_LEVELS[level], message)

    @staticmethod
    def claim(key, owner):
        try:
            return _CLAIM_RESULTS[wit_claims.claim(key, owner)]
        except Err as e:
            raise login_conflict.StoreError(_store_error_kind(e.value))

    @staticmethod
    def owner_of(key):
        try:
            return wit_claims.owner_of(key)
        except Err as e:
            raise login_conflict.StoreError(_store_error_kind(e.value))

    @staticmethod
    def release(key, owner):
        try:
            return wit_claims.release(key, owner)
        except Err as e:
            raise login_conflict.StoreError(_store_error_kind(e.value))

    @staticmethod
    def find_user(login):
        try:
            return wit_directory.find_user(login)
        except Err as e:
            raise login_conflict.DirectoryError(_DIRECTORY_ERRORS[type(e.value)])


_CLAIM_RESULTS = {
    wit_claims.ClaimResult.CLAIMED: "claimed",
    wit_claims.ClaimResult.ALREADY_YOURS: "already-yours",
    wit_claims.ClaimResult.TAKEN: "taken",
}

_STORE_ERRORS = {
    wit_claims.StoreError_Unavailable: "unavailable",
    wit_claims.StoreError_Timeout: "timeout",
    wit_claims.StoreError_Invalid: "invalid",
}


def _store_error_kind(error):
    return _STORE_ERRORS[type(error)]


_DIRECTORY_ERRORS = {
    wit_directory.DirectoryError_NotConfigured: "not-configured",
    wit_directory.DirectoryError_Unavailable: "unavailable",
    wit_directory.DirectoryError_RateLimited: "rate-limited",
    wit_directory.DirectoryError_TimedOut: "timed-out",
    wit_directory.DirectoryError_Denied: "denied",
}

_HOST = _Host()


class Resolver(ResolverProtocol):
    def resolve(self, request: wit.ImportRequest) -> wit.Response:
        req = login_conflict.Request(
            app_user=_Profile(request.app_user_profile),
            user=_Profile(request.user_profile),
            conflicts=request.context.conflicts,  # only read
            user_id=request.user_id,
        )
        try:
            answer = login_conflict.resolve(req, _HOST)
        except login_conflict.ResolveError as e:
            raise Err(str(e))
        commands = []
        if answer.login is not None:
            commands.append(
                wit.Command_UserProfileUpdate(
                    [wit.Attribute("login", wit.Value_Text(answer.login))]
                )
            )
        return wit.Response(commands=commands, debug_context=list(answer.debug_context))


class EventHandler(EventHandlerProtocol):
    def handle(self, event: wit_events.Event) -> None:
        if isinstance(event, wit_events.Event_Sync):
            sync = event.value
            ev = login_conflict.SyncEvent(
                uuid=sync.uuid,
                okta_user_id=sync.okta_user.id if sync.okta_user is not None else None,
                application_id=sync.application.id if sync.application is not None else None,
                app_user_alternate_id=(
                    sync.app_user.alternate_id if sync.app_user is not None else None
                ),
                debug_data=sync.debug_data,
            )
        else:
            ev = None
        try:
            login_conflict.handle(ev, _HOST)
        except login_conflict.ResolveError as e:
            raise Err(str(e))
