"""What a message says, independent of where it goes.

Every channel tells the same story in its own markup: what happened (title), why (the top reasons with
their scores), what was done (steps), and where to look (links). :func:`compose` builds that story once
as plain data; channels only lay it out (Block Kit, Adaptive Card, HTML, 160-character SMS).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from reactor.notify.events import Event, EventKind

_ARROW = "\u2192"
_DOT = "\u00b7"

_TITLES = {
    EventKind.DECISION_MADE: "Rollback decided",
    EventKind.HELD_FOR_APPROVAL: "Approval needed: roll back?",
    EventKind.ROLLBACK_STARTED: "Rollback started",
    EventKind.STEP_DONE: "Rollback step done",
    EventKind.ROLLBACK_SUCCEEDED: "Rollback succeeded",
    EventKind.ROLLBACK_FAILED: "Rollback FAILED",
    EventKind.RECOVERED: "Recovered",
}
_OBSERVE_TITLE = "Rollback would have been made (observe mode)"

#: Slack emoji per kind, so a channel scrolls by with the bad news standing out.
EMOJI = {
    EventKind.DECISION_MADE: ":mag:",
    EventKind.HELD_FOR_APPROVAL: ":raised_hand:",
    EventKind.ROLLBACK_STARTED: ":rewind:",
    EventKind.STEP_DONE: ":arrow_right_hook:",
    EventKind.ROLLBACK_SUCCEEDED: ":white_check_mark:",
    EventKind.ROLLBACK_FAILED: ":rotating_light:",
    EventKind.RECOVERED: ":green_heart:",
}

#: Colours (hex, no #) per kind: Teams accent, e-mail header bar.
COLOURS = {
    EventKind.DECISION_MADE: "6E7781",
    EventKind.HELD_FOR_APPROVAL: "D29922",
    EventKind.ROLLBACK_STARTED: "0969DA",
    EventKind.STEP_DONE: "0969DA",
    EventKind.ROLLBACK_SUCCEEDED: "1A7F37",
    EventKind.ROLLBACK_FAILED: "CF222E",
    EventKind.RECOVERED: "1A7F37",
}


@dataclass(frozen=True)
class Message:
    """The story of one event, channel-neutral. ``facts`` are (label, value) pairs, already short."""

    kind: EventKind
    title: str
    headline: str
    facts: tuple[tuple[str, str], ...]
    reasons: tuple[str, ...]
    steps: tuple[str, ...]
    summary: str
    links: tuple[tuple[str, str], ...]

    def text(self) -> str:
        """Plain text: the e-mail text part, the generic webhook's ``text``, the Slack fallback."""
        lines = [self.headline, ""]
        lines += [f"{label}: {value}" for label, value in self.facts]
        if self.summary:
            lines += ["", self.summary]
        if self.reasons:
            lines += ["", "Why:"] + [f"  - {reason}" for reason in self.reasons]
        if self.steps:
            lines += ["", "What was done:"] + [f"  - {step}" for step in self.steps]
        if self.links:
            lines += [""] + [f"{label}: {url}" for label, url in self.links]
        return "\n".join(lines).strip() + "\n"

    def html(self, actions: tuple[tuple[str, str], ...] = ()) -> str:
        """HTML for e-mail: inline styles only (mail clients drop <style>), escaped everywhere."""
        esc = html.escape
        colour = COLOURS[self.kind]
        rows = "".join(
            f'<tr><td style="padding:2px 12px 2px 0;color:#57606a">{esc(label)}</td><td>{esc(value)}</td></tr>'
            for label, value in self.facts
        )
        parts = [
            '<div style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#1f2328">',
            f'<div style="border-left:6px solid #{colour};padding:4px 12px;margin-bottom:12px">'
            f'<h2 style="margin:0;font-size:18px">{esc(self.headline)}</h2></div>',
            f'<table style="border-collapse:collapse">{rows}</table>',
        ]
        if self.summary:
            parts.append(f"<p>{esc(self.summary)}</p>")
        if self.reasons:
            items = "".join(f"<li>{esc(reason)}</li>" for reason in self.reasons)
            parts.append(f'<h3 style="font-size:15px">Why</h3><ul>{items}</ul>')
        if self.steps:
            items = "".join(f"<li>{esc(step)}</li>" for step in self.steps)
            parts.append(f'<h3 style="font-size:15px">What was done</h3><ul>{items}</ul>')
        if actions:
            buttons = " ".join(
                f'<a href="{esc(url, quote=True)}" '
                'style="display:inline-block;padding:8px 16px;margin-right:8px;'
                f"background:#{'1A7F37' if label.lower().startswith('approve') else '6E7781'};color:#fff;"
                f'text-decoration:none;border-radius:6px">{esc(label)}</a>'
                for label, url in actions
            )
            parts.append(f"<p>{buttons}</p>")
        if self.links:
            links = f" {_DOT} ".join(f'<a href="{esc(url, quote=True)}">{esc(label)}</a>' for label, url in self.links)
            parts.append(f"<p>{links}</p>")
        parts.append(
            '<p style="color:#57606a;font-size:12px">Sent by Smart Rollback. Messages of one decision share '
            "a thread.</p></div>"
        )
        return "".join(parts)

    def short(self, limit: int = 320) -> str:
        """One line for SMS: headline, the top reason, the explanation link. Cut to ``limit`` characters."""
        pieces = [f"[Smart Rollback] {self.headline}"]
        if self.reasons:
            pieces.append(self.reasons[0])
        elif self.summary:
            pieces.append(self.summary)
        link = next((url for label, url in self.links if label == "Decision explanation"), None)
        tail = f" {link}" if link else ""
        body = ". ".join(pieces)
        if len(body) + len(tail) > limit:
            body = body[: max(0, limit - len(tail) - 3)].rstrip() + "..."
        return body + tail


def title(event: Event) -> str:
    if event.mode == "observe" and event.kind is EventKind.DECISION_MADE:
        return _OBSERVE_TITLE
    return _TITLES[event.kind]


def compose(event: Event, *, max_reasons: int = 3) -> Message:
    """Build the channel-neutral story of ``event``."""
    target = event.target
    head = f"{title(event)}: {target.name} ({target.cluster}/{target.namespace})"
    facts: list[tuple[str, str]] = [("Target", str(target)), ("Severity", event.severity.value)]
    if event.strategy:
        facts.append(("Strategy", event.strategy))
    facts.append(("Mode", event.mode))
    if event.from_revision or event.to_revision:
        facts.append(("Revision", f"{event.from_revision or '?'} {_ARROW} {event.to_revision or '?'}"))
    if event.health_score is not None:
        facts.append(("Health score", f"{event.health_score:.0f}/100"))
    facts.append(("Decision", event.decision_id))
    reasons = tuple(
        f"{reason.text} (score {reason.score:g})" if reason.score is not None else reason.text
        for reason in event.top_reasons(max_reasons)
    )
    steps = tuple(
        f"{step.name}: {step.status}" + (f" {_DOT} {step.detail}" if step.detail else "") for step in event.steps
    )
    return Message(
        kind=event.kind,
        title=title(event),
        headline=head,
        facts=tuple(facts),
        reasons=reasons,
        steps=steps,
        summary=event.summary,
        links=tuple(event.links.items()),
    )


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut (APIs reject over-long fields)."""
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def mrkdwn_escape(text: str) -> str:
    """Slack mrkdwn needs only &, < and > escaped (they delimit links and mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
