"""Debian's Prometheus and node-exporter as processes for tests, on 127.0.0.1 and free ports.

    with NodeExporter.start(textfile_dir) as node, Prometheus.start(work, rules, node) as prom:
        prom.wait_for(lambda: prom.alerts(...), "the alert")

node-exporter runs only its textfile collector on the folder ``powrops alerts --textfile``
writes; Prometheus scrapes it every second, evaluates the rule files every second and answers
its HTTP API. Both are stopped (and waited for) when the ``with`` block ends.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from powrops.pg.cluster import free_port

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
HOST = "127.0.0.1"
T = TypeVar("T")


def installed() -> bool:
    return all(Path(p).is_file() for p in (PROMETHEUS, PROMTOOL, NODE_EXPORTER))


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 30) -> T:
    """The first truthy result of ``check`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except (urllib.error.URLError, ConnectionError):
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.25)


class _Process:
    def __init__(self, args: Sequence[str], log: Path) -> None:
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self: T) -> T:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class NodeExporter(_Process):
    """node-exporter with only the textfile collector, on ``directory``."""

    def __init__(self, directory: Path, log: Path) -> None:
        self.port = free_port()
        self.address = f"{HOST}:{self.port}"
        super().__init__(
            [
                NODE_EXPORTER,
                f"--web.listen-address={self.address}",
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={directory}",
            ],
            log,
        )

    @classmethod
    def start(cls, directory: Path, log: Path) -> NodeExporter:
        node = cls(directory, log)
        try:
            wait_for(lambda: node.metrics(), "node-exporter to answer")
        except BaseException:
            node.stop()
            raise
        return node

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.address}/metrics", timeout=5) as response:
            return str(response.read().decode())


class Prometheus(_Process):
    """Prometheus scraping ``node`` and evaluating ``rules``, every second."""

    def __init__(self, work: Path, rules: Sequence[Path], node: NodeExporter) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        config = work / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(r) for r in rules],
                    "scrape_configs": [
                        {"job_name": "node", "static_configs": [{"targets": [node.address]}]}
                    ],
                }
            )
        )
        super().__init__(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address={HOST}:{self.port}",
            ],
            work / "prometheus.log",
        )

    @classmethod
    def start(cls, work: Path, rules: Sequence[Path], node: NodeExporter) -> Prometheus:
        prom = cls(work, rules, node)
        try:
            wait_for(lambda: prom.api("/api/v1/rules")["data"]["groups"], "Prometheus' rules")
        except BaseException:
            prom.stop()
            raise
        return prom

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return _get(f"{self.url}{path}{query}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` returns now."""
        result: list[dict[str, Any]] = self.api("/api/v1/query", query=expr)["data"]["result"]
        return result

    def alerts(self, name: str, **labels: str) -> list[dict[str, Any]]:
        """Active alerts called ``name`` whose labels include ``labels``."""
        found = self.api("/api/v1/alerts")["data"]["alerts"]
        return [
            a
            for a in found
            if a["labels"].get("alertname") == name
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]


def copy_rules(source: Path, target: Path, hold: str = "1s") -> Path:
    """``source`` with every ``for:`` shortened to ``hold`` (the delays themselves are tested
    with promtool's unit tests), written to ``target``."""
    lines = [
        line.split("for:")[0] + f"for: {hold}" if line.strip().startswith("for:") else line
        for line in source.read_text().splitlines()
    ]
    target.write_text("\n".join(lines) + "\n")
    shutil.copystat(source, target)
    return target
