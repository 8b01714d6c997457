"""The three patch formats, against the behaviours KUBECTL_SANDBOX.md and the RFCs describe."""

from __future__ import annotations

import pytest

from sandbox.patch import (
    PatchError,
    PatchTestFailed,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

DEPLOY = {
    "metadata": {"name": "web", "annotations": {"a": "1"}},
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx:1.26", "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "envoy:1"},
                ]
            }
        }
    },
}


def test_json_patch_is_kubectl_undo_shaped() -> None:
    ops = [
        {"op": "replace", "path": "/spec/template", "value": {"spec": {"containers": [{"name": "web"}]}}},
        {"op": "replace", "path": "/metadata/annotations", "value": {"b": "2"}},
    ]
    out = json_patch(DEPLOY, ops)
    assert out["spec"]["template"] == {"spec": {"containers": [{"name": "web"}]}}
    assert out["metadata"]["annotations"] == {"b": "2"}
    assert DEPLOY["metadata"]["annotations"] == {"a": "1"}, "the input is not modified"


def test_json_patch_replace_of_a_missing_key_acts_like_add() -> None:
    """evanphx/json-patch v4 leniency: undo replaces /metadata/annotations even when there are none."""
    out = json_patch({"metadata": {}}, [{"op": "replace", "path": "/metadata/annotations", "value": {}}])
    assert out == {"metadata": {"annotations": {}}}


def test_json_patch_ops_and_pointer_escapes() -> None:
    doc = {"a": {"x/y": 1, "m~n": 2}, "list": [1, 2]}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "add", "path": "/list/0", "value": 0},
            {"op": "remove", "path": "/a/x~1y"},
            {"op": "copy", "from": "/a/m~0n", "path": "/b"},
            {"op": "move", "from": "/b", "path": "/c"},
            {"op": "test", "path": "/c", "value": 2},
        ],
    )
    assert out == {"a": {"m~n": 2}, "list": [0, 1, 2, 3], "c": 2}


def test_json_patch_failures() -> None:
    with pytest.raises(PatchTestFailed):
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    with pytest.raises(PatchError, match="does not exist"):
        json_patch({"a": {}}, [{"op": "replace", "path": "/a/b/c", "value": 1}])
    with pytest.raises(PatchError, match="list of operations"):
        json_patch({}, {"op": "add"})
    with pytest.raises(PatchError, match="out of range"):
        json_patch({"l": [1]}, [{"op": "replace", "path": "/l/5", "value": 1}])


def test_merge_patch_rfc7386() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None, "d": 3}, "l": [2]}) == {
        "a": {"c": 2, "d": 3},
        "l": [2],
    }


def test_strategic_merge_patch_merges_containers_by_name() -> None:
    """What ``kubectl set image`` sends (KUBECTL_SANDBOX.md §7.9)."""
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                    "containers": [{"image": "nginx:1.29", "name": "web"}],
                }
            }
        }
    }
    out = strategic_merge_patch(DEPLOY, patch)
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "sidecar"]
    assert containers[0]["image"] == "nginx:1.29"
    assert containers[0]["env"] == [{"name": "A", "value": "1"}], "unmentioned fields are kept"
    assert "$setElementOrder/containers" not in out["spec"]["template"]["spec"]


def test_strategic_merge_patch_directives() -> None:
    base = {"spec": {"containers": [{"name": "a"}, {"name": "b"}], "selector": {"x": "1", "y": "2"}}}
    out = strategic_merge_patch(base, {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}})
    assert out["spec"]["containers"] == [{"name": "b"}]
    out = strategic_merge_patch(base, {"spec": {"selector": {"$patch": "replace", "z": "3"}}})
    assert out["spec"]["selector"] == {"z": "3"}
    out = strategic_merge_patch(base, {"spec": {"selector": {"x": None}}})
    assert out["spec"]["selector"] == {"y": "2"}
    out = strategic_merge_patch({"f": ["a", "b"]}, {"$deleteFromPrimitiveList/f": ["a"]})
    assert out == {"f": ["b"]}
    # A list without a merge key is replaced, as in a merge patch.
    assert strategic_merge_patch({"args": ["a"]}, {"args": ["b"]}) == {"args": ["b"]}


def test_apply_patch_dispatches_on_content_type() -> None:
    assert apply_patch({"a": 1}, {"a": 2}, "application/merge-patch+json; charset=utf-8") == {"a": 2}
    with pytest.raises(PatchError, match="unsupported patch type"):
        apply_patch({}, {}, "application/apply-patch+yaml")
