"""One cluster's API, through the official client's ``ApiClient``, with our error taxonomy at the boundary.

Why not the generated typed methods: their pydantic models (kubernetes 37.x) drop fields they do not know
and are strict about types, so a read-modify-write of an object through them can lose data (a newer
field, a CRD's spec), and custom resources come back as plain dicts anyway. We use the same client stack
(``Configuration``, auth incl. exec plugins and token refresh, TLS, ``ApiClient.param_serialize`` /
``call_api``) but keep objects as the JSON the server sent. Every response is mapped here:

    404 -> NotFound (a TargetNotFoundError)      409 -> ConflictError (retry on a fresh read)
    401/403 -> PermanentError with an RBAC hint   400/415/422 -> PermanentError (the server's message)
    429/5xx, connection errors, timeouts -> TemporaryError(delay from Retry-After, else 1 s)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from strategies.errors import ConflictError, PermanentError, TargetNotFoundError, TemporaryError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


@dataclass(frozen=True)
class Kind:
    """Where a resource lives in the API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if sub:
                base += f"/{sub}"
        return base

    @property
    def display(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


DEPLOYMENT = Kind("apps", "v1", "deployments", "Deployment")
REPLICASET = Kind("apps", "v1", "replicasets", "ReplicaSet")
SERVICE = Kind("", "v1", "services", "Service")
CONFIGMAP = Kind("", "v1", "configmaps", "ConfigMap")
SECRET = Kind("", "v1", "secrets", "Secret")
INGRESS = Kind("networking.k8s.io", "v1", "ingresses", "Ingress")
LEASE = Kind("coordination.k8s.io", "v1", "leases", "Lease")
ROLLOUT = Kind("argoproj.io", "v1alpha1", "rollouts", "Rollout")
VIRTUALSERVICE = Kind("networking.istio.io", "v1", "virtualservices", "VirtualService")
HTTPROUTE = Kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
CONFIG_KINDS = {"ConfigMap": CONFIGMAP, "Secret": SECRET}


class NotFound(TargetNotFoundError):
    """A 404 from the API server."""


class Forbidden(PermanentError):
    """A 401/403: the credentials lack a verb on a resource."""


class KubeClient:
    """Requests to one cluster. ``api_client`` is a configured ``kubernetes.client.ApiClient``."""

    def __init__(self, api_client: Any, *, cluster: str, timeout: float = 10.0) -> None:
        self.api = api_client
        self.cluster = cluster
        self.timeout = timeout
        #: Requests made, and how many of them were writes (counters only: a reactor runs for months).
        self.request_count = 0
        self.write_count = 0

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        import urllib3
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config.config_exception import ConfigException

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        elif body is not None:
            headers["Content-Type"] = "application/json"
        self.request_count += 1
        if method != "GET":
            self.write_count += 1
        try:
            _method, url, header_params, serialized, _post = self.api.param_serialize(
                method=method,
                resource_path=path,
                query_params=list(query) or None,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(
                method,
                url,
                header_params=header_params,
                body=serialized,
                _request_timeout=(self.timeout, self.timeout),
            )
            response.read()
        except ConfigException as exc:
            raise PermanentError(
                f"cannot authenticate to cluster {self.cluster!r}: {exc}. For exec-auth contexts (AKS "
                "kubelogin, "
                "GKE gke-gcloud-auth-plugin) the plugin must be installed and logged in; see "
                "docs/kubernetes.md"
            ) from exc
        except ApiException as exc:  # the client's wrapper of TLS failures (status 0)
            raise PermanentError(
                f"TLS to the API server of cluster {self.cluster!r} ({self.host}) failed: {exc.reason}; "
                "check the "
                "kubeconfig's certificate-authority data"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TemporaryError(
                f"the API server of cluster {self.cluster!r} ({self.host}) did not answer {method} {path}: "
                f"{exc}; "
                "it may be down or unreachable from here",
                delay=2.0,
            ) from exc
        status, data = response.status, response.data or b""
        if 200 <= status < 300:
            if not data:
                return {}
            try:
                return json.loads(data)
            except ValueError as exc:
                raise TemporaryError(
                    f"cluster {self.cluster!r} answered {method} {path} with a body that is not JSON",
                    delay=2.0,
                ) from exc
        raise self._error(method, path, status, data, response.getheaders())

    def _error(self, method: str, path: str, status: int, data: bytes, headers: Mapping[str, str]) -> Exception:
        try:
            payload = json.loads(data) if data else {}
        except ValueError:
            payload = {}
        message = payload.get("message") if isinstance(payload, dict) else None
        message = message or data.decode(errors="replace")[:300] or f"HTTP {status}"
        where = f"{method} {path} on cluster {self.cluster!r}"
        if status == 404:
            return NotFound(f"{message} ({where})")
        if status == 409:
            return ConflictError(f"{message} ({where})")
        if status == 401:
            return Forbidden(
                f"{message} ({where}). The API server rejected the credentials of cluster {self.cluster!r}: "
                "an "
                "expired token, or an exec plugin (kubelogin, gke-gcloud-auth-plugin) that is not logged in"
            )
        if status == 403:
            return Forbidden(
                f"{message} ({where}). The credentials of cluster {self.cluster!r} lack this verb; grant the "
                "RBAC rules listed in docs/kubernetes.md#rbac"
            )
        if status == 429 or status >= 500:
            delay = _retry_after(headers) or (1.0 if status != 503 else 2.0)
            return TemporaryError(f"{message} ({where}, HTTP {status}); retry in {delay:g}s", delay=delay)
        return PermanentError(f"{message} ({where}, HTTP {status})")

    # ------------------------------------------------------------------------------------- shortcuts
    def get(self, kind: Kind, namespace: str, name: str, sub: str | None = None) -> dict[str, Any]:
        return dict(self.request("GET", kind.path(namespace, name, sub)))

    def find(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.get(kind, namespace, name)
        except NotFound:
            return None

    def list(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        query = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        return list(self.request("GET", kind.path(namespace), query=query).get("items") or [])

    def patch(
        self, kind: Kind, namespace: str, name: str, body: Any, content_type: str, *, sub: str | None = None
    ) -> dict[str, Any]:
        return dict(self.request("PATCH", kind.path(namespace, name, sub), body=body, content_type=content_type))

    def replace(self, kind: Kind, namespace: str, name: str, body: Any) -> dict[str, Any]:
        return dict(self.request("PUT", kind.path(namespace, name), body=body))

    def create(self, kind: Kind, namespace: str, body: Any) -> dict[str, Any]:
        return dict(self.request("POST", kind.path(namespace), body=body))

    def delete(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        return dict(self.request("DELETE", kind.path(namespace, name)))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
