"""The encoded forms of a secret that tests look for, computed here independently of the library."""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import quote, quote_plus, urlencode

#: Characters that change under percent-, form-, JSON- or base64-encoding.
SPECIALS = "+/=%:@ "


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def forms(secret: str, user: str | None = None) -> dict[str, str]:
    """Each form a server or library commonly produces from *secret* (and ``user:secret``)."""
    found = {
        "raw": secret,
        "percent-encoded (quote, safe='')": quote(secret, safe=""),
        "percent-encoded (quote)": quote(secret),
        "percent-encoded, lower-case hex": _lower_hex(quote(secret, safe="")),
        "quote_plus": quote_plus(secret),
        "form-encoded": urlencode({"k": secret})[2:],
        "JSON-escaped": json.dumps(secret)[1:-1],
        "JSON-escaped, slashes escaped": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "HTML-escaped": html.escape(secret),
    }
    if user is not None:
        pair = f"{user}:{secret}"
        found["user:password"] = pair
        found["base64 inside Basic"] = base64.b64encode(pair.encode("latin-1")).decode()
        found["base64 of form-encoded pair"] = base64.b64encode(
            f"{quote_plus(user)}:{quote_plus(secret)}".encode()
        ).decode()
    return found


def leaks(text: str, secret: str, user: str | None = None) -> list[str]:
    """The names of the forms of *secret* present in *text* (empty: none leaked)."""
    return [name for name, form in forms(secret, user).items() if form and form in text]
