"""Where a browser may be sent after signing in: a path on this site, never another origin.

``next`` comes from the address bar, so anyone can write it. Browsers are generous readers of a
``Location``: they drop tabs and newlines (``/\\t/evil.com`` is ``//evil.com``), read a backslash
as a slash (``/\\evil.com``), and take ``//host`` as another origin. Only a plain same-origin
path survives; anything else goes to the default page.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

DEFAULT_NEXT = "/dashboard"
MAX_NEXT_CHARS = 2048


def _unsafe_character(text: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F or char == "\\" for char in text)


def safe_next(target: str | None, default: str = DEFAULT_NEXT) -> str:
    """``target`` if it is a path on this site (with its query and fragment), else ``default``.

    Refused: anything not starting with one ``/``; a scheme or host; a backslash or a
    control character, whether written plainly or percent-encoded (``%09``, ``%5C``); and an
    encoded slash that could make the path start with ``//`` once decoded.
    """
    if not target or len(target) > MAX_NEXT_CHARS:
        return default
    decoded = unquote(target)
    if _unsafe_character(target) or _unsafe_character(decoded):
        return default
    for text in (target, decoded):
        if not text.startswith("/") or text.startswith("//"):
            return default
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            return default
    return target
