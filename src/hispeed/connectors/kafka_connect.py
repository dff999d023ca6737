"""Kafka Connect connectors, as ksqlDB runs them: through a Connect worker's REST API.

In Kafka mode, `CREATE SOURCE|SINK CONNECTOR` with a `connector.class` that is not one of
hispeed's (a Java class name such as `org.apache.kafka.connect.file.FileStreamSourceConnector`,
or any class once `ksql.connect.url` is set) goes to the Kafka Connect cluster at
`ksql.connect.url` (the server's `connect_url` setting): `POST /connectors` with the WITH
clause as its configuration. The cluster keeps the connector (its configuration, offsets and
state live in its own topics), so the statement is not kept in hispeed's command topic;
SHOW CONNECTORS, DESCRIBE CONNECTOR and DROP CONNECTOR ask the cluster, and answer in ksqlDB's
shapes (`ListConnectorsExecutor`, `DescribeConnectorExecutor`, `DropConnectorExecutor`).

What the worker says back (a bad configuration, an unknown class, a connector that does not
exist) and a worker that cannot be reached are `ConnectorError`s naming the worker, never
an exception of the HTTP client.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from hispeed.connectors.base import known_connectors
from hispeed.errors import ConnectorError

#: the Connect cluster's REST address (ksqlDB's name; the server's `connect_url` setting)
CONNECT_URL = "ksql.connect.url"
#: milliseconds each request to the Connect cluster may take to connect and to answer
#: (ksqlDB's name and default; the server's `connect_request_timeout_ms` setting)
CONNECT_TIMEOUT = "ksql.connect.request.timeout.ms"
DEFAULT_TIMEOUT_MS = 5000
#: tries of a request the worker answers with 409 (it is rebalancing) or a 5xx, or that could
#: not reach it, as ksqlDB's client makes them
ATTEMPTS = 3


class ConnectClient:
    """A Kafka Connect worker's REST API (`url`, such as "http://127.0.0.1:8083")."""

    def __init__(self, url: str, timeout_ms: float = DEFAULT_TIMEOUT_MS) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_ms / 1000

    def _request(self, method: str, path: str, what: str, body: Any = None) -> httpx.Response:
        """The worker's answer to `method path`, after up to ATTEMPTS tries of what may pass.
        An answer outside 2xx is a ConnectorError starting "Failed to `what`"."""
        response: httpx.Response | None = None
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(0.1 * 2**attempt)  # 0.2 s, 0.4 s: a rebalance usually ends by then
            try:
                response = httpx.request(method, self.url + path, json=body, timeout=self.timeout_s)
            except httpx.HTTPError as e:
                if attempt + 1 < ATTEMPTS:
                    continue
                raise ConnectorError(
                    f"Failed to {what}: cannot reach Kafka Connect at {self.url} "
                    f"({CONNECT_URL}): {type(e).__name__}: {e}"
                ) from None
            if response.status_code != 409 and response.status_code < 500:
                break
        assert response is not None
        if not response.is_success:
            raise ConnectError(f"Failed to {what}: {_message(response)}", response.status_code)
        return response

    def _json(self, method: str, path: str, what: str, body: Any = None) -> Any:
        response = self._request(method, path, what, body)
        try:
            return response.json()
        except ValueError:
            raise ConnectorError(
                f"Failed to {what}: Kafka Connect at {self.url} answered "
                f"{response.status_code} with no JSON: {response.text[:200]!r}"
            ) from None

    def connectors(self) -> list[str]:
        """The names of the cluster's connectors."""
        return [str(n) for n in self._json("GET", "/connectors", "list connectors")]

    def create(self, name: str, config: Mapping[str, str]) -> dict[str, Any]:
        """Create connector `name` (Connect's ConnectorInfo: name, config, tasks, type)."""
        body = {"name": name, "config": dict(config)}
        info = self._json("POST", "/connectors", "create connector", body)
        return dict(info)

    def info(self, name: str) -> dict[str, Any]:
        """A connector's ConnectorInfo: its configuration, tasks and type."""
        return dict(self._json("GET", f"/connectors/{_path(name)}", "describe connector"))

    def status(self, name: str) -> dict[str, Any]:
        """A connector's ConnectorStateInfo: the state of it and of each task."""
        path = f"/connectors/{_path(name)}/status"
        return dict(self._json("GET", path, "query connector status"))

    def topics(self, name: str) -> list[str]:
        """The topics the connector has used since it was created (Connect's active topics)."""
        found = self._json("GET", f"/connectors/{_path(name)}/topics", "list related topics")
        return [str(t) for t in (found.get(name) or {}).get("topics", [])]

    def delete(self, name: str) -> None:
        """Delete connector `name` (it stops; its offsets stay in the cluster's topic)."""
        self._request("DELETE", f"/connectors/{_path(name)}", "drop connector")


class ConnectError(ConnectorError):
    """What a Connect worker answered outside 2xx, with its HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _path(name: str) -> str:
    """A connector's name as one segment of a URL path."""
    return quote(name, safe="")


def _message(response: httpx.Response) -> str:
    """The error a Connect worker gave: its `message` (Connect's ErrorMessage), or the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    text = response.text.strip()
    return f"HTTP {response.status_code}" + (f": {text[:500]}" if text else "")


def is_hispeed_class(name: str) -> bool:
    """Whether `connector.class` names one of hispeed's connectors (of either kind, built in
    or offered by an installed package's entry point)."""
    return name.lower() in known_connectors()


def goes_to_kafka_connect(class_name: str, properties: Mapping[str, Any]) -> bool:
    """Whether a connector of `class_name` is Kafka Connect's: a class hispeed does not have,
    named as a Java class (with a dot) or with `ksql.connect.url` set."""
    if not class_name or is_hispeed_class(class_name):
        return False
    return "." in class_name or bool(properties.get(CONNECT_URL))


def client_for(properties: Mapping[str, Any], shared_log: bool) -> ConnectClient:
    """The Connect cluster the engine's properties name; a ConnectorError saying what to set
    when they name none, or when the engine's log is not Kafka (a Connect worker reads and
    writes Kafka's topics: the embedded log's are not there)."""
    url = str(properties.get(CONNECT_URL) or "").strip()
    if not shared_log:
        raise ConnectorError(
            "Kafka Connect connectors run in Kafka mode only (the `kafka` setting, "
            "HISPEED_KAFKA): a Connect worker reads and writes Kafka's topics, and the embedded "
            "log's topics are not in Kafka"
        )
    if not url:
        raise ConnectorError(
            f"a Kafka Connect connector needs the Connect cluster's REST address: set "
            f"{CONNECT_URL} (the server's `connect_url` setting, HISPEED_CONNECT_URL), such as "
            "http://localhost:8083"
        )
    if not url.startswith(("http://", "https://")):
        raise ConnectorError(f"{CONNECT_URL} must be an http:// or https:// URL, not {url!r}")
    timeout = properties.get(CONNECT_TIMEOUT, DEFAULT_TIMEOUT_MS)
    try:
        timeout_ms = float(timeout)
    except (TypeError, ValueError):
        timeout_ms = -1
    if not timeout_ms > 0:
        raise ConnectorError(
            f"{CONNECT_TIMEOUT} must be a positive number of milliseconds, not {timeout!r}"
        )
    return ConnectClient(url, timeout_ms)


def connect_configured(properties: Mapping[str, Any], shared_log: bool) -> bool:
    """Whether SHOW/DESCRIBE/DROP CONNECTOR also ask a Connect cluster."""
    return shared_log and bool(str(properties.get(CONNECT_URL) or "").strip())


def connect_config(name: str, properties: Mapping[str, Any]) -> dict[str, str]:
    """The Connect configuration of a WITH clause: every value as text (booleans as Java
    writes them), and the connector's name, as ksqlDB's ConnectExecutor builds it."""
    config: dict[str, str] = {}
    for key, value in properties.items():
        if isinstance(value, bool):
            config[key] = "true" if value else "false"
        else:
            config[key] = str(value)
    config["name"] = name
    return config


def summarize_state(status: Mapping[str, Any]) -> str:
    """A connector's state as SHOW CONNECTORS says it (ksqlDB's summarizeState): a connector
    RUNNING with tasks none of which runs is a WARNING; the tasks running are counted."""
    state = str((status.get("connector") or {}).get("state", ""))
    if state != "RUNNING":
        return state
    tasks = list(status.get("tasks") or [])
    running = sum(1 for t in tasks if t.get("state") == "RUNNING")
    summary = "WARNING" if tasks and running == 0 else "RUNNING"
    return f"{summary} ({running}/{len(tasks)} tasks RUNNING)"


def list_rows(client: ConnectClient) -> tuple[list[dict[str, Any]], list[str]]:
    """SHOW CONNECTORS' rows of the cluster's connectors (ksqlDB's SimpleConnectorInfo: name,
    type, className, state), and a warning for each that could not be described."""
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for name in client.connectors():
        try:
            info = client.info(name)
        except ConnectorError as e:  # deleted meanwhile, or the worker is busy: said, not fatal
            rows.append({"name": name, "type": "unknown"})  # as ksqlDB: no class, no state
            warnings.append(f"Could not describe connector {name}: {e}")
            continue
        try:
            state = summarize_state(client.status(name))
        except ConnectorError:
            state = ""
        rows.append(
            {
                "name": name,
                "type": str(info.get("type", "unknown")).lower(),
                "className": str((info.get("config") or {}).get("connector.class", "")),
                "state": state,
            }
        )
    return rows, warnings


def describe(client: ConnectClient, name: str) -> tuple[dict[str, Any], list[str]]:
    """DESCRIBE CONNECTOR of the cluster's connector `name`: its class, its status (Connect's
    ConnectorStateInfo as the worker gives it), the topics it used and its configuration;
    and the warnings (the topics could not be listed)."""
    status = client.status(name)
    info = client.info(name)
    warnings: list[str] = []
    try:
        topics = client.topics(name)
    except ConnectError as e:
        topics = []
        if e.status != 404:  # a worker older than KAFKA-9422 has no /topics: nothing to say
            warnings.append(f"Could not list related topics due to error: {e}")
    config = dict(info.get("config") or {})
    described = {
        "name": name,
        "type": str(info.get("type", "unknown")).lower(),
        "className": str(config.get("connector.class", "")),
        "state": summarize_state(status),
        "status": status,
        "topics": topics,
        "config": config,
        "kafkaConnect": client.url,
    }
    return described, warnings


__all__ = [
    "CONNECT_TIMEOUT",
    "CONNECT_URL",
    "ConnectClient",
    "ConnectError",
    "client_for",
    "connect_config",
    "connect_configured",
    "describe",
    "goes_to_kafka_connect",
    "is_hispeed_class",
    "list_rows",
    "summarize_state",
]
