"""The ``check`` and ``call`` subcommands: validate an integrations file, make one call through it."""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from .._redact import (
    REDACTED,
    is_secret_name,
    known_secret_values,
    redact_log_text,
    redact_text,
    shown_env_name,
)

if TYPE_CHECKING:
    from .._compat.stdlib import Subparsers
    from ..normalization.view import NormalizedResponse

__all__ = [
    "EXIT_CODES",
    "add_call_parser",
    "add_check_parser",
    "normalized_dict",
    "run_call",
    "run_check",
]

#: Exit codes of ``resilient-session call`` (``check`` uses 0, 2 and 3).
EXIT_CODES = {
    0: "success: a response with a status below 400 and a readable body",
    1: "an unexpected error",
    2: "usage error (bad arguments: a METHOD or PATH that cannot be sent, --json that is not JSON)",
    3: "invalid configuration, unknown integration, or an environment variable it names is not set",
    4: "the upstream answered 4xx (AuthenticationError, NotFoundError, RateLimitedError, ClientError, or "
    "RetryExhaustedError after retried 429s)",
    5: "the upstream answered 5xx (ServerError, or RetryExhaustedError after retried 5xx)",
    6: "timeout: connect, read or the call's deadline (APITimeoutError)",
    7: "connection failed or refused locally (APIConnectionError, CircuitOpenError, BulkheadFullError)",
    8: "the response body could not be read: malformed, or broken mid-way (MalformedResponseError, "
    "IncompleteBodyError)",
    141: "stdout was closed before everything was written (e.g. piped into head); nothing more is printed",
}

# RFC 9110 token characters: what http.client accepts as a method.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

_EPILOG = "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


# -- check --------------------------------------------------------------------------------------------


def add_check_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate an integrations file and print the effective policy of each integration",
        description=(
            "Validate CONFIG (TOML) and print each integration's effective timeouts, retry, breaker, "
            "budget, bulkhead and auth. Secret values are never printed: only the names of the "
            "environment variables and whether each is set."
        ),
        epilog="exit codes: 0 valid, 3 invalid (or, with --require-env, an environment variable unset)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", metavar="CONFIG", help="path of the integrations file")
    parser.add_argument("--json", action="store_true", help="print the policies as JSON")
    parser.add_argument(
        "--require-env", action="store_true", help="fail when an environment variable the file names is unset"
    )
    parser.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    from ..config.load import load_config
    from ..errors import ConfigurationError

    try:
        configs = load_config(args.config)
    except ConfigurationError as error:
        print(f"resilient-session check: {error}", file=sys.stderr)
        return 3
    unset = sorted(
        f"{location}: environment variable {shown_env_name(var)} is not set"
        for config in configs.values()
        for location, var in config.env_vars().items()
        if not _is_set(var)
    )
    # With --require-env an unset variable makes the file unusable here: the verdict and the exit code
    # say the same thing.
    failed = bool(unset) and args.require_env
    if args.json:
        print(json.dumps({name: config.policy() for name, config in configs.items()}, indent=2))
    else:
        count = f"{len(configs)} integration{'s' if len(configs) != 1 else ''}"
        if failed:
            verdict = f"INVALID: {len(unset)} environment variable{'s' if len(unset) != 1 else ''} not set"
        elif unset:
            verdict = f"valid ({len(unset)} environment variable{'s' if len(unset) != 1 else ''} not set)"
        else:
            verdict = "valid"
        print(f"{args.config}: {count}, {verdict}")
        for name, config in configs.items():
            lines = config.describe()
            print(f"\n[{name}]")
            width = max(len(key) for key in lines)
            for key, text in lines.items():
                print(f"  {key:<{width}}  {text}")
    if unset:
        print("\n" + "\n".join(unset), file=sys.stderr)
    return 3 if failed else 0


def _is_set(name: str) -> bool:
    import os

    return bool(os.environ.get(name, "").strip())


# -- call ---------------------------------------------------------------------------------------------


def add_call_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "call",
        help="make one call through a configured integration and print the normalized response as JSON",
        description=(
            "Build the session of integration NAME from CONFIG and send METHOD PATH (relative to its "
            "base_url) with its timeouts, retries, breaker and auth. Prints response.normalized as JSON "
            'on stdout; on a typed error prints {"error": ...} instead. The exit code says which.'
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", metavar="CONFIG", help="path of the integrations file")
    parser.add_argument("name", metavar="NAME", help="the integration, as in [integrations.NAME]")
    parser.add_argument("method", metavar="METHOD", help="HTTP method (GET, POST, ...)")
    parser.add_argument("path", metavar="PATH", help="path relative to base_url, or an absolute URL")
    parser.add_argument("--json", dest="body", metavar="BODY", help="send BODY (a JSON document) as the body")
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="add a request header (repeatable)",
    )
    parser.set_defaults(handler=run_call)


def run_call(args: argparse.Namespace) -> int:
    from requests import exceptions as rexc

    from .. import errors
    from ..config.sessions import session_from_config

    body: Any = None
    if args.body is not None:
        try:
            body = json.loads(args.body)
        except ValueError as error:
            print(f"resilient-session call: --json is not valid JSON: {error}", file=sys.stderr)
            return 2
    method = args.method.upper()
    if not _TOKEN.match(method):
        print(f"resilient-session call: {args.method!r} is not an HTTP method", file=sys.stderr)
        return 2
    headers = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            print(f"resilient-session call: --header needs NAME:VALUE, got {item!r}", file=sys.stderr)
            return 2
        headers[name.strip()] = value.strip()
    try:
        session = session_from_config(args.config, args.name)
    except errors.ConfigurationError as error:
        print(f"resilient-session call: {error}", file=sys.stderr)
        return 3
    kwargs: dict[str, Any] = {"headers": headers}
    if args.body is not None:
        kwargs["json"] = body
    with session:
        try:
            response = session.request(method, args.path, **kwargs)
        except errors.APIError as error:
            _print({"error": _error_dict(error)}, _secrets(session, error.request, headers))
            return _exit_code(error)
        except (rexc.InvalidURL, rexc.MissingSchema, rexc.InvalidSchema, rexc.InvalidHeader) as error:
            # Raised before anything is sent: PATH or a header is unusable (a usage error).
            text = redact_text(redact_log_text(str(error)), _secrets(session, None, headers))
            print(f"resilient-session call: {text}", file=sys.stderr)
            return 2
        except rexc.RequestException as error:
            # Not one of our typed errors (e.g. TooManyRedirects): report it, without a traceback.
            text = redact_text(redact_log_text(str(error)), _secrets(session, error.request, headers))
            print(f"resilient-session call: {type(error).__name__}: {text}", file=sys.stderr)
            return 1
        normalized: NormalizedResponse = response.normalized  # type: ignore[attr-defined]
        _print(normalized_dict(normalized), _secrets(session, response.request, headers))
        if normalized.status >= 400:
            return 4 if normalized.status < 500 else 5
        return 0 if normalized.ok else 8


def _exit_code(error: BaseException) -> int:
    from .. import errors

    if isinstance(error, errors.ConfigurationError):
        return 3
    if isinstance(error, errors.APIStatusError) or (
        # raise_on_status = true: retries ran out on a retryable status (503, 429 ...).
        isinstance(error, errors.RetryExhaustedError) and error.status is not None
    ):
        return 4 if (error.status or 0) < 500 else 5
    if isinstance(error, errors.APITimeoutError):
        return 6
    if isinstance(error, (errors.APIConnectionError, errors.CircuitOpenError, errors.BulkheadFullError)):
        return 7
    if isinstance(error, (errors.MalformedResponseError, errors.IncompleteBodyError)):
        return 8
    return 1


def _error_dict(error: Any) -> dict[str, Any]:
    return {
        "type": type(error).__name__,
        "message": str(error),
        "method": error.method,
        "url": error.url,
        "status": error.status,
        "attempts": error.attempts,
        "elapsed": round(error.elapsed, 6),
    }


def normalized_dict(normalized: NormalizedResponse) -> dict[str, Any]:
    """A JSON-ready dict of every field of *normalized*; secret-named headers are redacted and binary
    data is base64 text (``format`` says ``"binary"``)."""
    error = normalized.error
    data = normalized.data
    if isinstance(data, bytes):
        data = base64.b64encode(data).decode("ascii")
    return {
        "ok": normalized.ok,
        "status": normalized.status,
        "format": normalized.format,
        "data": data,
        "error": None
        if error is None
        else {
            "code": error.code,
            "message": error.message,
            "details": dict(error.details),
            "retryable": error.retryable,
        },
        "headers": {k: REDACTED if is_secret_name(k) else v for k, v in normalized.headers.items()},
        "url": normalized.url,
        "method": normalized.method,
        "elapsed": normalized.elapsed,
        "attempts": normalized.attempts,
        "request_id": normalized.request_id,
        "content_type": normalized.content_type,
    }


def _secrets(session: Any, request: Any, headers: dict[str, str]) -> set[str]:
    """Every credential this call carried: the auth object's (OAuth2 tokens included), those on the
    request sent (query, headers, Basic, form body) and secret-named ``--header`` values."""
    from requests.models import PreparedRequest

    from ..normalization.secrets import _request_secrets

    found = set(known_secret_values())
    found.update(getattr(session.auth, "secret_values", ()) or ())
    if isinstance(request, PreparedRequest):
        found.update(_request_secrets(request))
    found.update(value for name, value in headers.items() if is_secret_name(name) and value)
    return found


def _print(document: dict[str, Any], secrets: set[str]) -> None:
    # Scrubbed as a whole, body and envelope included: an API that echoes the request must not make
    # this command print the credential it was sent, in any encoding.
    text = json.dumps(document, indent=2, default=str, ensure_ascii=False)
    print(redact_text(text, secrets))
