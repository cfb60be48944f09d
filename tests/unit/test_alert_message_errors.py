"""A notification that cannot be built into a channel's message is that notification's dead letter, never a
failure of the channel: it does not open the circuit for everyone else's alerts. Mail headers carry no CR/LF."""

from __future__ import annotations

from floe_stream.sinks.alerts.channels.base import DeliveryError, MessageError
from floe_stream.sinks.alerts.channels.mail import EmailOptions, build_message, header_text
from floe_stream.sinks.alerts.config import Policy
from floe_stream.sinks.alerts.delivery import Dispatcher
from floe_stream.sinks.alerts.model import Alert, Notification
from tests.unit.alert_factory import alert, violation
from tests.unit.test_alert_delivery import FakeStore, Scripted, dead_letters, note


async def test_messages_that_cannot_be_built_never_open_the_circuit() -> None:
    log: list[str] = []
    dead: list[tuple[str, str, int]] = []
    errors: list[DeliveryError | None] = [MessageError("message cannot be built: ValueError: CR/LF")] * 3
    mail = Scripted("mail", [*errors, ValueError("a bug on one value"), None], log)  # type: ignore[list-item]
    d = Dispatcher(
        {"mail": mail}, FakeStore(), Policy(circuit_failures=2, circuit_cooldown_s=600), dead_letters(dead)
    )  # type: ignore[arg-type]
    for i in range(5):
        await d.deliver_all([note("mail", violation(element=f"e{i}"))])
    assert [(reason.split(":")[0], attempts) for _, reason, attempts in dead] == [
        ("message cannot be built", 1)
    ] * 3 + [("ValueError", 1)]  # each its own dead letter, not retried
    assert len(log) == 5  # the fifth was attempted (and delivered): the circuit never opened
    assert d.circuits["mail"].failures == 0


def test_mail_headers_turn_control_characters_into_spaces() -> None:
    assert (
        header_text("[floe] ERROR: sales\r\nBcc: x@evil.test · a\x00b")
        == "[floe] ERROR: sales Bcc: x@evil.test · a b"
    )
    a = alert(violation())
    odd: Alert = a.model_copy(update={"contract_name": "sales\r\nBcc: x@evil.test"})
    opts = EmailOptions.model_validate({"host": "h", "from": "f@x.test", "to": ["t@x.test"]})
    msg = build_message(
        Notification(channel="mail", status="firing", group_key="g", alerts=(odd,)),
        opts,
        lambda _: "http://x",
    )
    assert "\n" not in str(msg["Subject"]) and msg["Bcc"] is None
    assert "sales Bcc: x@evil.test" in str(msg["Subject"])
