"""Free-text identifiers that travel on (into every event, to a broker, into a unit file) have one rule each
(:data:`inspector.textline.IDENTIFIERS`), refused in one line naming the option, exit 2, before any work.

Accepted whole before: a 5,000-character ``--model-version`` went into the sidecar and from there into every
event header and MQTT message; a ``--user`` with a newline wrote a line of its own into the systemd unit."""

from __future__ import annotations

import pytest

from inspector.cli import main
from inspector.textline import identifier_problem

LONG = "v" * 5000


@pytest.mark.parametrize("argv, option", [
    (["export", "{d}/run", "--model-version", LONG], "--model-version"),
    (["export", "{d}/run", "--model-version", "1.0 beta"], "--model-version"),
    (["enroll", "--model", "{d}/run", "--references", "{d}/a.png", "--out", "{d}/e", "--model-version", ""],
     "--model-version"),
    (["subscribe", "mqtt://127.0.0.1:1", "--client-id", "a" * 65], "--client-id"),
    (["subscribe", "mqtt://127.0.0.1:1", "--client-id", "plant/consumer"], "--client-id"),
    (["service", "install", "--config", "{d}/d.yaml", "--print", "--user", "root\nExecStartPre=/bin/sh"], "--user"),
    (["service", "install", "--config", "{d}/d.yaml", "--print", "--user", "u" * 32], "--user"),
], ids=["version-long", "version-space", "version-empty", "client-id-long", "client-id-slash", "user-newline",
        "user-long"])
def test_an_identifier_against_its_rule_is_one_line_naming_the_option(tmp_path, capsys, argv, option):
    assert main([a.replace("{d}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and len(err) < 400, err
    assert f"argument {option}: '" in err and "is not a valid" in err, err
    assert not any(tmp_path.iterdir())  # refused before any work


@pytest.mark.parametrize("kind, text", [
    ("model version", "1.4.0-rc.1+line3"), ("model version", "a" * 64), ("model version", "3f2a9c1e-k5"),
    ("MQTT client id", "plant-consumer.2"), ("user name", "inspect"), ("user name", "_svc-inspect"),
    ("user name", "1000"),
])
def test_the_usual_forms_pass(kind, text):
    assert identifier_problem(kind, text) is None


def test_the_exporter_itself_refuses_one(tmp_path):
    """A caller of the library (not the CLI) is held to the same rule, before anything is made."""
    from inspector.deploy.export import export_model
    from inspector.errors import ExportError

    with pytest.raises(ExportError, match=r"^model_version: 'vvv.*\(5000 characters\)' is not a valid model version"):
        export_model(None, tmp_path / "m", version=LONG)
    assert not any(tmp_path.iterdir())
