"""Label and field selectors (KUBECTL_SANDBOX.md §2.1, §6)."""

from __future__ import annotations

import pytest

from sandbox.selectors import SelectorError, field_matcher, label_matcher, render_selector, selector_matches
from strategies.kubernetes.names import render_selector as platform_render


def obj(labels: dict[str, str], name: str = "web") -> dict:
    return {"metadata": {"name": name, "labels": labels}}


def test_go_rendered_selector_round_trips() -> None:
    selector = {
        "matchLabels": {"app": "noann"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    text = render_selector(selector)
    assert text == "app=noann,!legacy,tier in (a,b)"
    assert platform_render(selector) == text, "the platform renders selectors the way kubectl does"
    match = label_matcher(text)
    assert match(obj({"app": "noann", "tier": "a"}))
    assert not match(obj({"app": "noann", "tier": "c"}))
    assert not match(obj({"app": "noann", "tier": "a", "legacy": "y"}))
    assert selector_matches(selector, {"app": "noann", "tier": "b"})


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app!=web", {"app": "api"}, True),
        ("app!=web", {}, True),
        ("env notin (prod)", {"env": "dev"}, True),
        ("env notin (prod)", {"env": "prod"}, False),
        ("track", {"track": "x"}, True),
        ("track", {}, False),
        ("", {}, True),
    ],
)
def test_label_selector_operators(text: str, labels: dict[str, str], expected: bool) -> None:
    assert label_matcher(text)(obj(labels)) is expected


def test_field_selector_on_name() -> None:
    match = field_matcher("metadata.name=web")
    assert match(obj({}, "web"))
    assert not match(obj({}, "aaa"))
    assert field_matcher("metadata.name!=web")(obj({}, "aaa"))
    with pytest.raises(SelectorError):
        field_matcher("metadata.name")


def test_bad_label_selector_is_an_error() -> None:
    with pytest.raises(SelectorError):
        label_matcher("a b c")
