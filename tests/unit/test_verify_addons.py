"""Reaching the add-ons from this machine (toolkit/verify/addons.py) against a loopback
server standing in for Prometheus and VictoriaLogs, and `k8slab open`'s choice of UI."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.lab_specs import mutated, write_spec
from toolkit.errors import K8slabError
from toolkit.lab import addons
from toolkit.lab.spec import Lab, load_lab
from toolkit.verify import addons as reach

BODIES = {
    "/api/v1/query": b'{"status": "success", "data": {"result": []}}',
    "/select/logsql/query": b'{"_msg": "a"}\n{"_msg": "b"}\n',
    "/select/logsql/one": b'{"_msg": "a"}\n',
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = BODIES.get(self.path.split("?")[0], b"<html>not json</html>")
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def _lab(tmp_path: Path, names: list[str]) -> Lab:
    def change(data: dict[str, Any]) -> None:
        data["addons"] = names
        data["nodes"]["workers"][0]["memory_mb"] = 2560

    return load_lab(write_spec(tmp_path, mutated(change)))


def test_answers_are_json_or_one_json_object_per_line(
    tmp_path: Path, server: http.server.HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = _lab(tmp_path, ["monitoring", "logging"])
    local = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(addons.Ui, "base", lambda self, lab: local)
    ui = addons.PROMETHEUS_UI
    answer = reach.get_json(ui, lab, "/api/v1/query", query="up == 0")
    assert answer.ok and answer.data["status"] == "success"
    assert server.paths[-1] == "/api/v1/query?query=up+%3D%3D+0"  # type: ignore[attr-defined]
    lines = reach.logs_query(lab, '"token"')
    assert lines.data == [{"_msg": "a"}, {"_msg": "b"}]
    # One matching line is still a list of lines, not that line's object.
    assert reach.get_json(ui, lab, "/select/logsql/one", lines=True).data == [{"_msg": "a"}]
    broken = reach.get_json(ui, lab, "/other")
    assert not broken.ok and "not JSON" in broken.error


def test_an_unreachable_server_is_an_answer_with_its_error(tmp_path: Path) -> None:
    lab = _lab(tmp_path, ["monitoring"])
    answer = reach.get_json(addons.Ui("x", "svc", 1, "/"), lab, "/")
    assert not answer.ok and answer.evidence.startswith("GET http://172.30.9.21:1/: ")


def test_a_ui_shows_every_marker_of_a_real_render() -> None:
    ui = addons.PROMETHEUS_UI
    assert reach.missing_markers(ui, " ".join(reach.UI_MARKERS[ui.name])) == []
    assert reach.missing_markers(ui, "<html>502 Bad Gateway</html>") == list(
        reach.UI_MARKERS[ui.name]
    )


def test_open_names_a_ui_by_its_name_or_its_add_on(tmp_path: Path) -> None:
    lab = _lab(tmp_path, ["monitoring", "logging"])
    assert addons.uis(lab) == [addons.PROMETHEUS_UI, addons.LOGS_UI]
    assert addons.uis(lab, "logs") == addons.uis(lab, "logging") == [addons.LOGS_UI]
    assert addons.PROMETHEUS_UI.url(lab) == "http://172.30.9.21:30090/classic/graph"
    with pytest.raises(K8slabError, match=r"no web UI 'grafana'; its UIs are: prometheus"):
        addons.uis(lab, "grafana")
    with pytest.raises(K8slabError, match="has no add-on with a web UI"):
        addons.uis(_lab(tmp_path / "ms", ["metrics-server"]))
