"""The one error a parser raises.

Whatever a sender posts, a parser either returns alerts or raises :class:`PayloadError`; the reactor turns
it into ``400`` with the message. Alertmanager and Datadog do not retry 4xx, which is right for a body that
will never parse.
"""

from __future__ import annotations


class PayloadError(ValueError):
    """A payload that cannot be turned into alerts.

    ``path`` names the field in JSON-pointer-ish dotted form (``alerts[2].startsAt``), ``expected`` says
    what should have been there.
    """

    def __init__(self, path: str, expected: str, got: object = None) -> None:
        self.path = path
        self.expected = expected
        self.got = got
        shown = _short(got)
        super().__init__(f"{path or '<body>'}: expected {expected}" + (f", got {shown}" if shown else ""))


def _short(value: object) -> str:
    if value is None:
        return ""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
