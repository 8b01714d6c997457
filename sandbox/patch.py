"""The three patch formats the API server accepts: JSON Patch, JSON merge patch, strategic merge patch.

- JSON Patch (RFC 6902, ``application/json-patch+json``) is what ``kubectl rollout undo`` sends. Like the
  apiserver's evanphx/json-patch v4, ``replace`` of a missing *object key* behaves like ``add``
  (KUBECTL_SANDBOX.md §5.2: the undo's second op replaces ``/metadata/annotations`` even when the
  Deployment has none).
- JSON merge patch (RFC 7386, ``application/merge-patch+json``): maps merge, ``null`` deletes, lists are
  replaced. The only format custom resources accept besides JSON Patch.
- Strategic merge patch (``application/strategic-merge-patch+json``, built-in kinds only): like a merge
  patch, but lists of known fields merge by their key (containers by ``name``, ports by
  ``containerPort``...), and ``$patch``, ``$setElementOrder/…``, ``$retainKeys`` and
  ``$deleteFromPrimitiveList/…`` directives are honoured.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied (answered with 422 Invalid, or 409 for a failed ``test``)."""


class PatchTestFailed(PatchError):
    """A JSON Patch ``test`` op did not match."""


JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


# ---------------------------------------------------------------------------------------------- JSON Patch
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list, part: str, *, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return len(container)
    if not part.isdigit():
        raise PatchError(f"array index {part!r} is not a number")
    index = int(part)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f"array index {index} out of range (length {len(container)})")
    return index


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"path component {token!r} does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, allow_end=False)]
        else:
            raise PatchError(f"cannot descend into a {type(node).__name__} at {token!r}")
    return node


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {'/' + '/'.join(tokens)} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, allow_end=False)]
    raise PatchError(f"path {'/' + '/'.join(tokens)} does not exist")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), value)
    else:
        raise PatchError(f"cannot add at {'/' + '/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"cannot remove missing path {'/' + '/'.join(tokens)}")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, allow_end=False)]
    else:
        raise PatchError(f"cannot remove {'/' + '/'.join(tokens)}")
    return doc


def _replace(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value  # lenient like json-patch v4: a missing key is added
    elif isinstance(parent, list):
        parent[_index(parent, last, allow_end=False)] = value
    else:
        raise PatchError(f"cannot replace {'/' + '/'.join(tokens)}")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 patch to a copy of ``doc``."""
    if not isinstance(ops, list):
        raise PatchError("a JSON Patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, Mapping) or "op" not in op or "path" not in op:
            raise PatchError(f"malformed JSON Patch operation {op!r}")
        kind, tokens = op["op"], _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, tokens)
        elif kind == "replace":
            doc = _replace(doc, tokens, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, tokens, value)
        elif kind == "test":
            if _get(doc, tokens) != op.get("value"):
                raise PatchTestFailed(f"test operation failed at {op['path']}")
        else:
            raise PatchError(f"unknown JSON Patch op {kind!r}")
    return doc


# ----------------------------------------------------------------------------------------- merge patch
def merge_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch, returning a new value."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ------------------------------------------------------------------------------- strategic merge patch
#: Merge keys of the list fields our workloads use, by field name (the same for every kind here).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
#: ``ports`` merges by ``containerPort`` inside containers and by ``port`` in a Service spec.
_PORT_KEYS = ("containerPort", "port")


def _merge_key(field: str, items: list) -> str | None:
    if field == "ports":
        for key in _PORT_KEYS:
            if all(isinstance(i, Mapping) and key in i for i in items if isinstance(i, Mapping)):
                return key
        return None
    return MERGE_KEYS.get(field)


def _strategic_list(field: str, original: list, patch: list, retain_order: list | None) -> list:
    key = _merge_key(field, [*original, *patch])
    if key is None or not all(isinstance(i, Mapping) for i in patch):
        # Lists without a merge key are replaced, minus any directive elements.
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, Mapping) and "$patch" in i)]
    if any(isinstance(i, Mapping) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, Mapping) and "$patch" in i)]
    result = [copy.deepcopy(i) for i in original]
    for item in patch:
        directive = item.get("$patch")
        position = next((n for n, o in enumerate(result) if o.get(key) == item.get(key)), None)
        if directive == "delete":
            if position is not None:
                del result[position]
            continue
        clean = {k: v for k, v in item.items() if k != "$patch"}
        if position is None:
            result.append(strategic_merge_patch({}, clean))
        else:
            result[position] = strategic_merge_patch(result[position], clean)
    if retain_order:
        order = [o.get(key) for o in retain_order if isinstance(o, Mapping)]
        ranked = {name: n for n, name in enumerate(order)}
        result.sort(key=lambda o: ranked.get(o.get(key), len(ranked)))
    return result


def strategic_merge_patch(doc: Any, patch: Any) -> Any:
    """Apply a strategic merge patch (the subset kubectl and the Python client send) to a copy of ``doc``."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            existing = result.get(key)
            original: list = existing if isinstance(existing, list) else []
            result[key] = _strategic_list(key, original, value, orders.get(key))
        elif isinstance(value, Mapping):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    for field, order in orders.items():
        if field not in patch and isinstance(result.get(field), list):
            result[field] = _strategic_list(field, result[field], [], order)
    return result


def apply_patch(doc: Any, body: Any, content_type: str) -> Any:
    """Dispatch on the request's Content-Type (parameters ignored)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == JSON_PATCH:
        return json_patch(doc, body)
    if kind == MERGE_PATCH:
        return merge_patch(doc, body)
    if kind == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(doc, body)
    raise PatchError(f"unsupported patch type {content_type!r}")
