"""Label and field selectors, parsed the way the API server does.

kubectl trusts the server to filter: ``rollout history`` lists ReplicaSets with ``labelSelector`` set to the
Deployment's selector and never re-checks the labels, and ``rollout status`` relies on
``fieldSelector=metadata.name=NAME`` (KUBECTL_SANDBOX.md §2.1, §6). A server that ignores either one makes
kubectl report the wrong history or a false success, so both are implemented in full.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """A selector string the server cannot parse (answered with 400 BadRequest)."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present  # "!"


_SET_RE = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses (``a in (x,y),b=c``)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in (p.strip() for p in parts) if p]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse ``app=web,!legacy,tier in (a,b)``; raise SelectorError naming the bad term."""
    if not text:
        return []
    requirements = []
    for term in _split_top_level(text):
        set_match = _SET_RE.match(term)
        if set_match:
            values = tuple(v.strip() for v in set_match.group(3).split(",") if v.strip())
            requirements.append(Requirement(set_match.group(1), set_match.group(2), values))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            requirements.append(Requirement(key.strip(), "!=", (value.strip(),)))
        elif "==" in term:
            key, value = term.split("==", 1)
            requirements.append(Requirement(key.strip(), "=", (value.strip(),)))
        elif "=" in term:
            key, value = term.split("=", 1)
            requirements.append(Requirement(key.strip(), "=", (value.strip(),)))
        elif term.startswith("!"):
            requirements.append(Requirement(term[1:].strip(), "!"))
        elif re.fullmatch(r"[A-Za-z0-9._/-]+", term):
            requirements.append(Requirement(term, "exists"))
        else:
            raise SelectorError(f"unable to parse requirement {term!r} of label selector {text!r}")
    return requirements


def label_matcher(text: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over whole objects for ``labelSelector=text``."""
    requirements = parse_label_selector(text)

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in requirements)

    return matches


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a structured ``LabelSelector`` (matchLabels + matchExpressions) selects ``labels``.

    An empty selector selects everything, as in the API; a missing one selects nothing.
    """
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        req = Requirement(expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ()))
        if not req.matches(labels):
            return False
    return True


def _field(obj: Mapping[str, Any], path: str) -> str | None:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return None if node is None else str(node)


def field_matcher(text: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for ``fieldSelector`` (``metadata.name=web``, ``==``, ``!=``; any dotted field)."""
    if not text:
        return lambda _obj: True
    terms: list[tuple[str, bool, str]] = []
    for term in _split_top_level(text):
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append((key.strip(), False, value.strip()))
        elif "=" in term:
            key, value = term.replace("==", "=", 1).split("=", 1)
            terms.append((key.strip(), True, value.strip()))
        else:
            raise SelectorError(f"unable to parse field selector term {term!r}; use field=value or field!=value")

    def matches(obj: Mapping[str, Any]) -> bool:
        return all((_field(obj, key) == value) is equal for key, equal, value in terms)

    return matches


def render_selector(selector: Mapping[str, Any]) -> str:
    """Render a structured LabelSelector the way Go's ``metav1.LabelSelectorAsSelector`` does.

    Keys sorted, set-based syntax, values sorted: what kubectl sends as ``labelSelector``.
    """
    terms: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        terms.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, op = expr["key"], expr["operator"]
        values = ",".join(sorted(expr.get("values") or ()))
        text = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }[op]
        terms.append((key, text))
    return ",".join(text for _key, text in sorted(terms, key=lambda t: t[0]))
