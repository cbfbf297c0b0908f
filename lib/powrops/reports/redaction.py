"""Redaction of the secrets a report run must not archive.

Every secret the caller passes, in each form it may take in text, HTML, JSON and URLs, and the
password of every ``scheme://user:password@`` URL become ``[REDACTED]``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"

_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\"<>]+:)(?P<password>[^\s@/'\"<>]+)(?=@)"
)


_PLACEHOLDER = re.compile(r"^(?:\{[^{}]*\}|\$\{?\w+\}?|\*+|%\(?\w*\)?s|\[REDACTED\])$")


def _variants(secrets: Iterable[str]) -> list[str]:
    """Each secret as it may appear in text, HTML, JSON and URLs; longest first."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        forms.update(
            {
                secret,
                html.escape(secret),
                html.escape(secret, quote=False),
                json.dumps(secret)[1:-1],
                json.dumps(secret, ensure_ascii=False)[1:-1],
                quote(secret, safe=""),
                quote_plus(secret),
            }
        )
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret and every password in a ``scheme://user:password@`` URL
    replaced by ``[REDACTED]``.

    Placeholders in code (``{password}``, ``${PGPASSWORD}``, ``%s``, ``***``) are not secrets
    and stay, so a runbook's code still reads as written.
    """
    for form in _variants(secrets):
        text = text.replace(form, REDACTED)
    return _URL_PASSWORD.sub(_redact_url_password, text)


def _redact_url_password(match: re.Match[str]) -> str:
    if _PLACEHOLDER.match(match["password"]):
        return match[0]
    return match["head"] + REDACTED


def redact_tree(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {k: redact_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_tree(v, secrets) for v in value]
    return value
