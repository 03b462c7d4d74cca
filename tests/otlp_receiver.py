"""A local OTLP/HTTP receiver for tests: stdlib http.server + the opentelemetry.proto message classes.

    receiver = OtlpReceiver().start()
    exporter = OTLPSpanExporter(endpoint=receiver.traces_endpoint)
    ...
    receiver.wait_for(lambda r: r.spans())
    receiver.stop()

It accepts protobuf-encoded POSTs on /v1/traces, /v1/metrics and /v1/logs (gzip or deflate compressed or
not), keeps every decoded request, and answers 200 with an empty Export*ServiceResponse, as a Collector does.
`spans()` and `metrics()` flatten what arrived into plain dicts so tests compare values, not protobufs.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_SERVICES: dict[str, tuple[type[Message], type[Message]]] = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "/v1/metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as the Python value it holds (arrays as tuples, as the SDK keeps them)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in key_values}


class OtlpReceiver:
    """Collects OTLP/HTTP exports on 127.0.0.1 (an ephemeral port unless one is given)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, list[Message]] = {path: [] for path in _SERVICES}
        self.errors: list[str] = []
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> OtlpReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="otlp-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """Base URL, as for OTEL_EXPORTER_OTLP_ENDPOINT (the exporters append /v1/<signal>)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def traces_endpoint(self) -> str:
        return f"{self.endpoint}/v1/traces"

    @property
    def metrics_endpoint(self) -> str:
        return f"{self.endpoint}/v1/metrics"

    # -- what arrived -------------------------------------------------------------------------------------
    def requests(self, path: str) -> list[Message]:
        with self._lock:
            return list(self._requests[path])

    def clear(self) -> None:
        with self._lock:
            for received in self._requests.values():
                received.clear()

    def spans(self) -> list[dict[str, Any]]:
        """Every span received, flattened: name, hex ids, kind, attributes, status, times, scope, resource."""
        out = []
        for request in self.requests("/v1/traces"):
            for rs in request.resource_spans:  # type: ignore[attr-defined]
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append(
                            {
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex() or None,
                                "kind": span.kind,
                                "attributes": attributes(span.attributes),
                                "status_code": span.status.code,
                                "status_message": span.status.message,
                                "start_ns": span.start_time_unix_nano,
                                "end_ns": span.end_time_unix_nano,
                                "scope": ss.scope.name,
                                "resource": resource,
                            }
                        )
        return out

    def metrics(self) -> list[dict[str, Any]]:
        """Every data point received, flattened, in arrival order.

        Sums carry `value`; histograms `count`, `sum`, `bucket_counts`, `bounds`. With cumulative temporality
        (the SDK default) each export repeats the running totals: use `latest()` rather than adding them up.
        """
        out = []
        for index, request in enumerate(self.requests("/v1/metrics")):
            for rm in request.resource_metrics:  # type: ignore[attr-defined]
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        out.extend(_points(index, sm.scope.name, metric))
        return out

    def latest(self, name: str, **attrs: Any) -> list[dict[str, Any]]:
        """The points of metric `name` (matching `attrs`) from the last export that carried that metric."""
        points = [p for p in self.metrics() if p["name"] == name]
        if not points:
            return []
        last = max(p["export"] for p in points)
        return [
            p
            for p in points
            if p["export"] == last and all(p["attributes"].get(k) == v for k, v in attrs.items())
        ]

    def wait_for(self, condition: Callable[[OtlpReceiver], Any], timeout: float = 5.0) -> Any:
        """Poll until `condition(self)` is truthy; return its value, or raise AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"OTLP receiver: condition not met within {timeout}s; errors={self.errors}"
                )
            time.sleep(0.01)

    # -- HTTP ---------------------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                service = _SERVICES.get(self.path)
                if service is None:
                    self._reply(404, b"", "text/plain")
                    return
                if "protobuf" not in self.headers.get("Content-Type", ""):
                    receiver.errors.append(f"unsupported content type {self.headers.get('Content-Type')}")
                    self._reply(415, b"", "text/plain")
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "").lower()
                try:
                    if encoding == "gzip":
                        body = gzip.decompress(body)
                    elif encoding == "deflate":
                        body = zlib.decompress(body)
                    request_class, response_class = service
                    message = request_class()
                    message.ParseFromString(body)
                except Exception as exc:
                    receiver.errors.append(f"{self.path}: {exc!r}")
                    self._reply(400, b"", "text/plain")
                    return
                with receiver._lock:
                    receiver._requests[self.path].append(message)
                self._reply(200, response_class().SerializeToString(), "application/x-protobuf")

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        return Handler


def _points(export: int, scope: str, metric: Any) -> list[dict[str, Any]]:
    kind = metric.WhichOneof("data")
    base = {"export": export, "scope": scope, "name": metric.name, "unit": metric.unit, "kind": kind}
    out = []
    if kind in ("sum", "gauge"):
        data = getattr(metric, kind)
        for point in data.data_points:
            value = getattr(point, point.WhichOneof("value"))
            extra = {"is_monotonic": data.is_monotonic, "temporality": data.aggregation_temporality}
            out.append(
                {
                    **base,
                    **(extra if kind == "sum" else {}),
                    "attributes": attributes(point.attributes),
                    "value": value,
                }
            )
    elif kind == "histogram":
        for point in metric.histogram.data_points:
            out.append(
                {
                    **base,
                    "temporality": metric.histogram.aggregation_temporality,
                    "attributes": attributes(point.attributes),
                    "count": point.count,
                    "sum": point.sum,
                    "bucket_counts": tuple(point.bucket_counts),
                    "bounds": tuple(point.explicit_bounds),
                }
            )
    return out
