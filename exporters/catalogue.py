# ruff: noqa: E501  (a table of queries: one template per line reads best)
"""Ready metric templates (RED / USE) that a target references by name instead of writing PromQL.

Placeholders filled per target: ``{namespace}``, ``{name}`` (the workload), ``{rate}`` (rate window,
default ``2m``), ``{split}`` (the split label, e.g. ``revision``) and ``{by}`` (``by (revision)`` in
label mode, empty in time mode, so one template serves both), plus any ``params`` the target gives
(``{job}``, ``{metric}``, ``{host}``, ``{ingress}``...). ``judge`` holds the defaults the judge uses for the
metric (group, direction, kind); a target's own ``judge:`` settings override them.

Per-pod series (cAdvisor, kube-state-metrics) carry no revision label; the templates join them with
``kube_pod_labels`` on the pod label named by ``{pod_label}`` (default ``label_{split}``) so they split
by revision too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Template:
    name: str
    family: str
    description: str
    query: str
    judge: dict[str, Any] = field(default_factory=dict)
    unit: str = ""


def _t(
    name: str, family: str, description: str, query: str, group: str, direction: str = "increase", **kw: Any
) -> Template:
    judge: dict[str, Any] = {"group": group, "direction": direction}
    if "kind" in kw:
        judge["kind"] = kw.pop("kind")
    if kw.pop("critical", False):
        judge["critical"] = True
    return Template(name, family, description, " ".join(query.split()), judge, kw.pop("unit", ""))


_POD_JOIN = (
    "* on (namespace, pod) group_left({split}) "
    'max by (namespace, pod, {split}) (label_replace(kube_pod_labels{{namespace="{namespace}"}}, '
    '"{split}", "$1", "{pod_label}", "(.*)"))'
)
_POD = 'namespace="{namespace}", pod=~"{name}-.*"'
_ISTIO = 'destination_workload="{name}", destination_workload_namespace="{namespace}", reporter="destination"'
_NGINX = 'exported_namespace="{namespace}", ingress="{ingress}"'
_HTTP = 'job="{job}", namespace="{namespace}"'

_TEMPLATES: list[Template] = [
    # --- generic RED from instrumented services (prometheus client libraries) ---------------------
    _t(
        "http_request_rate",
        "http",
        "Requests per second",
        "sum {by} (rate(http_requests_total{{" + _HTTP + "}}[{rate}]))",
        "business",
        "decrease",
        unit="req/s",
    ),
    _t(
        "http_error_ratio",
        "http",
        "Share of 5xx responses",
        "sum {by} (rate(http_requests_total{{"
        + _HTTP
        + ', code=~"5.."}}[{rate}])) / sum {by} (rate(http_requests_total{{'
        + _HTTP
        + "}}[{rate}]))",
        "errors",
        critical=True,
        unit="ratio",
    ),
    _t(
        "http_errors",
        "http",
        "5xx responses per interval (a count: judged as a rate)",
        "sum {by} (increase(http_requests_total{{" + _HTTP + ', code=~"5.."}}[{rate}]))',
        "errors",
        kind="count",
    ),
    _t(
        "http_4xx_ratio",
        "http",
        "Share of 4xx responses",
        "sum {by} (rate(http_requests_total{{"
        + _HTTP
        + ', code=~"4.."}}[{rate}])) / sum {by} (rate(http_requests_total{{'
        + _HTTP
        + "}}[{rate}]))",
        "errors",
        unit="ratio",
    ),
    _t(
        "http_latency_p50",
        "http",
        "Median request latency",
        "histogram_quantile(0.5, sum by (le{comma_split}) (rate(http_request_duration_seconds_bucket{{"
        + _HTTP
        + "}}[{rate}])))",
        "latency",
        unit="s",
    ),
    _t(
        "http_latency_p90",
        "http",
        "p90 request latency",
        "histogram_quantile(0.9, sum by (le{comma_split}) (rate(http_request_duration_seconds_bucket{{"
        + _HTTP
        + "}}[{rate}])))",
        "latency",
        unit="s",
    ),
    _t(
        "http_latency_p99",
        "http",
        "p99 request latency",
        "histogram_quantile(0.99, sum by (le{comma_split}) (rate(http_request_duration_seconds_bucket{{"
        + _HTTP
        + "}}[{rate}])))",
        "latency",
        unit="s",
    ),
    _t(
        "http_latency_mean",
        "http",
        "Mean request latency",
        "sum {by} (rate(http_request_duration_seconds_sum{{"
        + _HTTP
        + "}}[{rate}])) / sum {by} (rate(http_request_duration_seconds_count{{"
        + _HTTP
        + "}}[{rate}]))",
        "latency",
        unit="s",
    ),
    _t(
        "grpc_error_ratio",
        "http",
        "Share of non-OK gRPC calls",
        "sum {by} (rate(grpc_server_handled_total{{"
        + _HTTP
        + ', grpc_code!="OK"}}[{rate}])) / sum {by} (rate(grpc_server_handled_total{{'
        + _HTTP
        + "}}[{rate}]))",
        "errors",
        unit="ratio",
    ),
    _t(
        "grpc_latency_p99",
        "http",
        "p99 gRPC handling time",
        "histogram_quantile(0.99, sum by (le{comma_split}) (rate(grpc_server_handling_seconds_bucket{{"
        + _HTTP
        + "}}[{rate}])))",
        "latency",
        unit="s",
    ),
    # --- Istio (service mesh telemetry v2) ---------------------------------------------------------
    _t(
        "istio_request_rate",
        "istio",
        "Requests per second into the workload",
        "sum {by_istio} (rate(istio_requests_total{{" + _ISTIO + "}}[{rate}]))",
        "business",
        "decrease",
        unit="req/s",
    ),
    _t(
        "istio_error_ratio",
        "istio",
        "Share of 5xx responses",
        "sum {by_istio} (rate(istio_requests_total{{"
        + _ISTIO
        + ', response_code=~"5.."}}[{rate}])) / sum {by_istio} (rate(istio_requests_total{{'
        + _ISTIO
        + "}}[{rate}]))",
        "errors",
        critical=True,
        unit="ratio",
    ),
    _t(
        "istio_errors",
        "istio",
        "5xx responses per interval",
        "sum {by_istio} (increase(istio_requests_total{{" + _ISTIO + ', response_code=~"5.."}}[{rate}]))',
        "errors",
        kind="count",
    ),
    _t(
        "istio_latency_p50",
        "istio",
        "Median latency (ms)",
        "histogram_quantile(0.5, sum by (le{comma_istio}) (rate(istio_request_duration_milliseconds_bucket{{"
        + _ISTIO
        + "}}[{rate}])))",
        "latency",
        unit="ms",
    ),
    _t(
        "istio_latency_p90",
        "istio",
        "p90 latency (ms)",
        "histogram_quantile(0.9, sum by (le{comma_istio}) (rate(istio_request_duration_milliseconds_bucket{{"
        + _ISTIO
        + "}}[{rate}])))",
        "latency",
        unit="ms",
    ),
    _t(
        "istio_latency_p99",
        "istio",
        "p99 latency (ms)",
        "histogram_quantile(0.99, sum by (le{comma_istio}) (rate(istio_request_duration_milliseconds_bucket{{"
        + _ISTIO
        + "}}[{rate}])))",
        "latency",
        unit="ms",
    ),
    _t(
        "istio_tcp_sent_bytes",
        "istio",
        "TCP bytes sent per second",
        "sum {by_istio} (rate(istio_tcp_sent_bytes_total{{" + _ISTIO + "}}[{rate}]))",
        "saturation",
        "either",
        unit="B/s",
    ),
    _t(
        "istio_tcp_connections_failed",
        "istio",
        "Failed TCP connections per interval",
        "sum {by_istio} (increase(istio_tcp_connections_closed_total{{" + _ISTIO + ', response_flags!="-"}}[{rate}]))',
        "errors",
        kind="count",
    ),
    # --- NGINX ingress controller -------------------------------------------------------------------
    _t(
        "nginx_request_rate",
        "nginx-ingress",
        "Requests per second through the ingress",
        "sum {by_nginx} (rate(nginx_ingress_controller_requests{{" + _NGINX + "}}[{rate}]))",
        "business",
        "decrease",
        unit="req/s",
    ),
    _t(
        "nginx_error_ratio",
        "nginx-ingress",
        "Share of 5xx at the ingress",
        "sum {by_nginx} (rate(nginx_ingress_controller_requests{{"
        + _NGINX
        + ', status=~"5.."}}[{rate}])) / sum {by_nginx} (rate(nginx_ingress_controller_requests{{'
        + _NGINX
        + "}}[{rate}]))",
        "errors",
        critical=True,
        unit="ratio",
    ),
    _t(
        "nginx_errors",
        "nginx-ingress",
        "5xx at the ingress per interval",
        "sum {by_nginx} (increase(nginx_ingress_controller_requests{{" + _NGINX + ', status=~"5.."}}[{rate}]))',
        "errors",
        kind="count",
    ),
    _t(
        "nginx_latency_p50",
        "nginx-ingress",
        "Median request time at the ingress",
        "histogram_quantile(0.5, sum by (le{comma_nginx}) (rate(nginx_ingress_controller_request_duration_seconds_bucket{{"
        + _NGINX
        + "}}[{rate}])))",
        "latency",
        unit="s",
    ),
    _t(
        "nginx_latency_p99",
        "nginx-ingress",
        "p99 request time at the ingress",
        "histogram_quantile(0.99, sum by (le{comma_nginx}) (rate(nginx_ingress_controller_request_duration_seconds_bucket{{"
        + _NGINX
        + "}}[{rate}])))",
        "latency",
        unit="s",
    ),
    _t(
        "nginx_upstream_latency_p99",
        "nginx-ingress",
        "p99 upstream response time",
        "histogram_quantile(0.99, sum by (le{comma_nginx}) (rate(nginx_ingress_controller_response_duration_seconds_bucket{{"
        + _NGINX
        + "}}[{rate}])))",
        "latency",
        unit="s",
    ),
    _t(
        "nginx_response_size",
        "nginx-ingress",
        "Mean response size",
        "sum {by_nginx} (rate(nginx_ingress_controller_response_size_sum{{"
        + _NGINX
        + "}}[{rate}])) / sum {by_nginx} (rate(nginx_ingress_controller_response_size_count{{"
        + _NGINX
        + "}}[{rate}]))",
        "business",
        "either",
        unit="B",
    ),
    # --- cAdvisor (container USE) -------------------------------------------------------------------
    _t(
        "container_cpu_usage",
        "cadvisor",
        "CPU cores used per pod",
        "avg {by} (sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{"
        + _POD
        + ', container!=""}}[{rate}])) '
        + _POD_JOIN
        + ")",
        "saturation",
        unit="cores",
    ),
    _t(
        "container_cpu_throttling",
        "cadvisor",
        "Share of CFS periods throttled",
        "avg {by} (sum by (namespace, pod) (rate(container_cpu_cfs_throttled_periods_total{{"
        + _POD
        + "}}[{rate}])) / sum by (namespace, pod) (rate(container_cpu_cfs_periods_total{{"
        + _POD
        + "}}[{rate}])) "
        + _POD_JOIN
        + ")",
        "saturation",
        unit="ratio",
    ),
    _t(
        "container_memory_working_set",
        "cadvisor",
        "Working-set memory per pod",
        "avg {by} (sum by (namespace, pod) (container_memory_working_set_bytes{{"
        + _POD
        + ', container!=""}}) '
        + _POD_JOIN
        + ")",
        "saturation",
        unit="B",
    ),
    _t(
        "container_memory_rss",
        "cadvisor",
        "RSS per pod",
        "avg {by} (sum by (namespace, pod) (container_memory_rss{{" + _POD + ', container!=""}}) ' + _POD_JOIN + ")",
        "saturation",
        unit="B",
    ),
    _t(
        "container_oom_events",
        "cadvisor",
        "OOM events per interval",
        "sum {by} (sum by (namespace, pod) (increase(container_oom_events_total{{"
        + _POD
        + "}}[{rate}])) "
        + _POD_JOIN
        + ")",
        "errors",
        kind="count",
        critical=True,
    ),
    _t(
        "container_network_receive",
        "cadvisor",
        "Bytes received per second per pod",
        "avg {by} (sum by (namespace, pod) (rate(container_network_receive_bytes_total{{"
        + _POD
        + "}}[{rate}])) "
        + _POD_JOIN
        + ")",
        "saturation",
        "either",
        unit="B/s",
    ),
    _t(
        "container_network_transmit",
        "cadvisor",
        "Bytes sent per second per pod",
        "avg {by} (sum by (namespace, pod) (rate(container_network_transmit_bytes_total{{"
        + _POD
        + "}}[{rate}])) "
        + _POD_JOIN
        + ")",
        "saturation",
        "either",
        unit="B/s",
    ),
    _t(
        "container_fs_writes",
        "cadvisor",
        "Filesystem bytes written per second",
        "avg {by} (sum by (namespace, pod) (rate(container_fs_writes_bytes_total{{"
        + _POD
        + "}}[{rate}])) "
        + _POD_JOIN
        + ")",
        "saturation",
        unit="B/s",
    ),
    _t(
        "container_open_fds",
        "cadvisor",
        "Open file descriptors per pod",
        "avg {by} (sum by (namespace, pod) (container_file_descriptors{{" + _POD + "}}) " + _POD_JOIN + ")",
        "saturation",
    ),
    # --- kube-state-metrics -------------------------------------------------------------------------
    _t(
        "pod_restarts",
        "kube-state-metrics",
        "Container restarts per interval",
        "sum {by} (sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total{{"
        + _POD
        + "}}[{rate}])) "
        + _POD_JOIN
        + ")",
        "errors",
        kind="count",
        critical=True,
    ),
    _t(
        "pod_not_ready",
        "kube-state-metrics",
        "Pods not ready",
        "sum {by} (sum by (namespace, pod) (kube_pod_status_ready{{"
        + _POD
        + ', condition="false"}}) '
        + _POD_JOIN
        + ")",
        "errors",
        kind="count",
    ),
    _t(
        "pod_crashloop",
        "kube-state-metrics",
        "Containers waiting in CrashLoopBackOff",
        "sum {by} (sum by (namespace, pod) (kube_pod_container_status_waiting_reason{{"
        + _POD
        + ', reason="CrashLoopBackOff"}}) '
        + _POD_JOIN
        + ")",
        "errors",
        kind="count",
        critical=True,
    ),
    _t(
        "pod_oomkilled",
        "kube-state-metrics",
        "Containers last terminated by OOMKilled",
        "sum {by} (sum by (namespace, pod) (kube_pod_container_status_last_terminated_reason{{"
        + _POD
        + ', reason="OOMKilled"}}) '
        + _POD_JOIN
        + ")",
        "errors",
        kind="count",
        critical=True,
    ),
    _t(
        "deployment_unavailable_replicas",
        "kube-state-metrics",
        "Unavailable replicas of the Deployment",
        'sum(kube_deployment_status_replicas_unavailable{{namespace="{namespace}", deployment="{name}"}})',
        "errors",
        kind="count",
    ),
    _t(
        "deployment_replicas_mismatch",
        "kube-state-metrics",
        "Desired minus available replicas",
        'sum(kube_deployment_spec_replicas{{namespace="{namespace}", deployment="{name}"}}) - sum(kube_deployment_status_replicas_available{{namespace="{namespace}", deployment="{name}"}})',
        "errors",
    ),
    _t(
        "container_cpu_request_ratio",
        "kube-state-metrics",
        "CPU used over CPU requested",
        "avg {by} (sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{"
        + _POD
        + ', container!=""}}[{rate}])) / sum by (namespace, pod) (kube_pod_container_resource_requests{{'
        + _POD
        + ', resource="cpu"}}) '
        + _POD_JOIN
        + ")",
        "saturation",
        unit="ratio",
    ),
    _t(
        "container_memory_limit_ratio",
        "kube-state-metrics",
        "Working set over memory limit",
        "max {by} (sum by (namespace, pod) (container_memory_working_set_bytes{{"
        + _POD
        + ', container!=""}}) / sum by (namespace, pod) (kube_pod_container_resource_limits{{'
        + _POD
        + ', resource="memory"}}) '
        + _POD_JOIN
        + ")",
        "saturation",
        critical=True,
        unit="ratio",
    ),
    _t(
        "hpa_at_max",
        "kube-state-metrics",
        "HPA running at its maximum",
        'max(kube_horizontalpodautoscaler_status_current_replicas{{namespace="{namespace}", horizontalpodautoscaler="{name}"}}) >= bool max(kube_horizontalpodautoscaler_spec_max_replicas{{namespace="{namespace}", horizontalpodautoscaler="{name}"}})',
        "saturation",
    ),
    # --- node exporter (host USE) -------------------------------------------------------------------
    _t(
        "node_cpu_utilisation",
        "node-exporter",
        "Share of CPU time not idle",
        '1 - avg(rate(node_cpu_seconds_total{{mode="idle", instance=~"{host}"}}[{rate}]))',
        "saturation",
        unit="ratio",
    ),
    _t(
        "node_cpu_iowait",
        "node-exporter",
        "Share of CPU time in iowait",
        'avg(rate(node_cpu_seconds_total{{mode="iowait", instance=~"{host}"}}[{rate}]))',
        "saturation",
        unit="ratio",
    ),
    _t(
        "node_load_per_cpu",
        "node-exporter",
        "1-minute load per CPU",
        'sum(node_load1{{instance=~"{host}"}}) / count(node_cpu_seconds_total{{mode="idle", instance=~"{host}"}})',
        "saturation",
    ),
    _t(
        "node_memory_utilisation",
        "node-exporter",
        "Share of memory not available",
        '1 - sum(node_memory_MemAvailable_bytes{{instance=~"{host}"}}) / sum(node_memory_MemTotal_bytes{{instance=~"{host}"}})',
        "saturation",
        unit="ratio",
    ),
    _t(
        "node_swap_in",
        "node-exporter",
        "Pages swapped in per second",
        'sum(rate(node_vmstat_pswpin{{instance=~"{host}"}}[{rate}]))',
        "saturation",
    ),
    _t(
        "node_disk_utilisation",
        "node-exporter",
        "Share of time disks are busy",
        'avg(rate(node_disk_io_time_seconds_total{{instance=~"{host}"}}[{rate}]))',
        "saturation",
        unit="ratio",
    ),
    _t(
        "node_filesystem_full",
        "node-exporter",
        "Share of filesystem space used",
        '1 - min(node_filesystem_avail_bytes{{instance=~"{host}", fstype!~"tmpfs|overlay"}} / node_filesystem_size_bytes{{instance=~"{host}", fstype!~"tmpfs|overlay"}})',
        "saturation",
        critical=True,
        unit="ratio",
    ),
    _t(
        "node_network_errors",
        "node-exporter",
        "Network receive and transmit errors per interval",
        'sum(increase(node_network_receive_errs_total{{instance=~"{host}"}}[{rate}])) + sum(increase(node_network_transmit_errs_total{{instance=~"{host}"}}[{rate}]))',
        "errors",
        kind="count",
    ),
    _t(
        "node_network_drops",
        "node-exporter",
        "Dropped packets per interval",
        'sum(increase(node_network_receive_drop_total{{instance=~"{host}"}}[{rate}]))',
        "errors",
        kind="count",
    ),
    _t(
        "node_conntrack_ratio",
        "node-exporter",
        "Conntrack table usage",
        'max(node_nf_conntrack_entries{{instance=~"{host}"}} / node_nf_conntrack_entries_limit{{instance=~"{host}"}})',
        "saturation",
        unit="ratio",
    ),
    # --- business KPIs (counters the service exports; names are params) ----------------------------
    _t(
        "orders_per_second",
        "business",
        "Orders placed per second",
        "sum {by} (rate({metric}{{" + _HTTP + "}}[{rate}]))",
        "business",
        "decrease",
        unit="1/s",
    ),
    _t(
        "checkout_conversion",
        "business",
        "Completed over started checkouts",
        "sum {by} (rate({completed}{{" + _HTTP + "}}[{rate}])) / sum {by} (rate({started}{{" + _HTTP + "}}[{rate}]))",
        "business",
        "decrease",
        unit="ratio",
    ),
    _t(
        "payment_failure_ratio",
        "business",
        "Failed over attempted payments",
        "sum {by} (rate({failed}{{" + _HTTP + "}}[{rate}])) / sum {by} (rate({attempted}{{" + _HTTP + "}}[{rate}]))",
        "errors",
        critical=True,
        unit="ratio",
    ),
    _t(
        "signups_per_second",
        "business",
        "Sign-ups per second",
        "sum {by} (rate({metric}{{" + _HTTP + "}}[{rate}]))",
        "business",
        "decrease",
        unit="1/s",
    ),
    _t(
        "revenue_per_second",
        "business",
        "Revenue counter rate",
        "sum {by} (rate({metric}{{" + _HTTP + "}}[{rate}]))",
        "business",
        "decrease",
    ),
    _t(
        "cart_abandonment_ratio",
        "business",
        "Abandoned over created carts",
        "sum {by} (rate({abandoned}{{" + _HTTP + "}}[{rate}])) / sum {by} (rate({created}{{" + _HTTP + "}}[{rate}]))",
        "business",
        unit="ratio",
    ),
    _t(
        "queue_backlog",
        "business",
        "Messages waiting in a queue",
        "sum {by} ({metric}{{" + _HTTP + "}})",
        "saturation",
    ),
    _t(
        "job_failure_ratio",
        "business",
        "Failed over finished background jobs",
        "sum {by} (rate({failed}{{" + _HTTP + "}}[{rate}])) / sum {by} (rate({finished}{{" + _HTTP + "}}[{rate}]))",
        "errors",
        unit="ratio",
    ),
    _t(
        "search_zero_results_ratio",
        "business",
        "Searches returning nothing",
        "sum {by} (rate({empty}{{" + _HTTP + "}}[{rate}])) / sum {by} (rate({total}{{" + _HTTP + "}}[{rate}]))",
        "business",
        unit="ratio",
    ),
    _t(
        "custom_gauge",
        "business",
        "Any gauge the service exports (param metric)",
        "avg {by} ({metric}{{" + _HTTP + "}})",
        "business",
        "either",
    ),
    _t(
        "custom_counter_rate",
        "business",
        "Any counter's rate (param metric)",
        "sum {by} (rate({metric}{{" + _HTTP + "}}[{rate}]))",
        "business",
        "either",
    ),
]

#: The catalogue: template name -> Template.
CATALOGUE: dict[str, Template] = {t.name: t for t in _TEMPLATES}

_FIELD = re.compile(r"(?<!\{)\{([a-z_]+)\}(?!\})")


def template_params(name: str) -> set[str]:
    """The placeholders a template needs."""
    return set(_FIELD.findall(CATALOGUE[name].query))


def render_template(name: str, params: Mapping[str, str], *, split_label: str = "revision", mode: str = "label") -> str:
    """The template's query for one target; KeyError-free: a missing param raises ValueError naming it."""
    tpl = CATALOGUE[name]
    labelled = mode == "label"
    values: dict[str, str] = {
        "rate": "2m",
        "job": params.get("name", ""),
        "host": ".*",
        "ingress": params.get("name", ""),
        "split": split_label,
        "pod_label": f"label_{split_label}",
        "by": f"by ({split_label})" if labelled else "",
        "comma_split": f", {split_label}" if labelled else "",
        # Istio and NGINX expose the version themselves (destination_version / canary service); the split
        # label is still what the target names.
        "by_istio": f"by ({split_label})" if labelled else "",
        "comma_istio": f", {split_label}" if labelled else "",
        "by_nginx": f"by ({split_label})" if labelled else "",
        "comma_nginx": f", {split_label}" if labelled else "",
    }
    values.update(params)
    missing = sorted(template_params(name) - set(values))
    if missing:
        raise ValueError(f"template {name!r} needs params {missing} (set them under the metric's 'params')")
    query = tpl.query.format(**values)
    if not labelled:
        query = query.replace(" group_left()", " group_left").replace("by ()", "")
    return query
