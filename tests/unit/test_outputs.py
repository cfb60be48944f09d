"""Outputs cannot be used against their readers (issue 20): the escaping rules themselves, Slack's fallback
text, the `floe dev` live view and both log formats."""

from __future__ import annotations

import io
import json
import logging

from rich.console import Console

from floe_stream.printable import csv_cell, printable, printable_data
from floe_stream.runtime.devtools.dev import ViolationTable
from floe_stream.sinks.alerts.channels.slack import build_payload
from floe_stream.sinks.alerts.model import Notification
from floe_stream.telemetry.metrics import JsonFormatter, TextFormatter, redact
from tests.unit.alert_factory import alert, violation


def test_printable_escapes_every_control_character_and_keeps_clean_text_as_is() -> None:
    clean = "sales.orders ünïcode ✓"
    assert printable(clean) is clean
    assert printable("a\x1b[2Jb\rc\nd\te\x7f\x9b\u202e") == "a\\x1b[2Jb\\rc\\nd\\te\\x7f\\x9b\\u202e"
    assert printable("a\nb\x1b", newlines=True) == "a\nb\\x1b"
    data = {"k\x07": ["x\x1b", ("y", 1)], "ok": "fine"}
    assert printable_data(data) == {"k\\x07": ["x\\x1b", ("y", 1)], "ok": "fine"}
    assert printable_data({"ok": ["fine"]}) is not None


def test_csv_cells_never_start_a_formula() -> None:
    for evil in ("=1+1", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        cell = csv_cell(evil)
        assert cell.startswith("'"), cell
    assert csv_cell(-1.5) == -1.5 and csv_cell(3) == 3  # numbers stay numbers
    assert csv_cell("sales.orders") == "sales.orders"


def test_slack_fallback_text_is_escaped_like_the_blocks() -> None:
    a = alert(
        violation(
            "x<!channel>", contract="<!channel> c", message="see <http://evil.example|your bank> & <!here>"
        )
    )
    n = Notification(channel="c", status="firing", group_key="g", alerts=(a,))
    payload = build_payload(n, lambda _: "https://floe.example/v/1")
    text = payload["text"]
    mrkdwn = [t for t in _texts(payload["blocks"]) if t["type"] == "mrkdwn"]  # plain_text is never parsed
    for raw in ("<!channel>", "<!here>", "<http://evil.example|"):
        assert raw not in text, text
        assert not [t for t in mrkdwn if raw in t["text"]]
    assert "&lt;!channel&gt;" in text and "&amp;" in text
    assert text.endswith("https://floe.example/v/1")  # floe's own link stays a link


def _texts(node: object) -> list[dict[str, str]]:
    if isinstance(node, dict):
        found = [node] if isinstance(node.get("text"), str) and "type" in node else []
        return found + [t for v in node.values() for t in _texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    return []


def test_dev_live_view_shows_input_as_plain_escaped_text() -> None:
    table = ViolationTable()
    table.add(violation("evil\x1b]0;pwned\x07[bold red]x[/]", message="m\x1b[2J"))
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, width=200, color_system="truecolor").print(table.render())
    out = buf.getvalue()
    assert "\x1b]0;pwned" not in out and "\x1b[2J" not in out
    assert "evil\\x1b]0;pwned\\x07[bold red]x[/]" in out  # markup shown as text, not applied


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad key 'k\n2026-01-01 00:00:00,000 ERROR x: forged'")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("floe_stream.t", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_text_log_lines_cannot_be_forged_and_json_lines_stay_valid() -> None:
    forged = "2026-01-01 00:00:00,000 ERROR floe_stream: FORGED"
    rec = _record("dead-lettered %s: %s", "k\n" + forged, "\x1b]0;t\x07", exc=True)
    text = TextFormatter().format(rec)
    lines = text.splitlines()
    assert "\\n" + forged in lines[0] and "\\x1b]0;t\\x07" in lines[0]
    assert all(line.startswith("    ") for line in lines[1:])  # the traceback, indented
    assert not any(line.startswith(forged) for line in lines)
    out = JsonFormatter().format(rec)
    assert "\n" not in out
    assert json.loads(out)["msg"].endswith(forged + ": \x1b]0;t\x07")  # exact, escaped by JSON


def test_url_userinfo_is_masked_in_every_log_format() -> None:
    assert redact("POST https://user:hunter2@hooks.example/x") == "POST https://***@hooks.example/x"
    assert redact("no url here: a@b") == "no url here: a@b"
    rec = _record("connect %s", "postgresql://floe:hunter2@db:5432/floe")
    assert "hunter2" not in TextFormatter().format(rec) and "hunter2" not in JsonFormatter().format(rec)
