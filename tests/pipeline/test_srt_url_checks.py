"""srt:// options libsrt refuses at every open are refused by the configuration check in one line (pipeline.srt_options).

They were accepted, and the camera reconnected with back-off for ever, each attempt failing the same way ("failed to
set option SRTO_PASSPHRASE on socket: … Bad parameters") as if the sender were down. The real ffprobe is asked too:
the values refused are values FFmpeg's srt protocol (libsrt) refuses."""

from __future__ import annotations

import subprocess

import pytest

from inspector.errors import ConfigError
from inspector.pipeline.config import daemon_config
from inspector.pipeline.ffmpeg_live import program_has

REFUSED = [
    ("srt://127.0.0.1:5848?mode=caller&passphrase=short5", "passphrase is 6 characters; libsrt takes 10 to 80"),
    ("srt://127.0.0.1:5848?mode=caller&passphrase=" + "p" * 81, "passphrase is 81 characters"),
    ("srt://127.0.0.1:5848?pbkeylen=7", "pbkeylen=7 is not one of 0, 16, 24, 32"),
    ("srt://127.0.0.1:5848?mode=server", "mode=server is not one of caller, listener, rendezvous"),
    ("srt://127.0.0.1:5848?mode=caller&passphrase=0123456789ab&latency=200ms", "latency=200ms is not a whole number"),
]


def _config(url: str) -> dict:
    return {"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5},
            "cameras": [{"name": "line1", "source": url, "mode": "live"}]}


@pytest.mark.parametrize("url, said", REFUSED)
def test_an_srt_option_libsrt_refuses_is_a_configuration_error_in_one_line(url, said):
    with pytest.raises(ConfigError) as caught:
        daemon_config(_config(url))
    line = str(caught.value)
    assert "source: the srt:// address's " in line and said in line and "\n" not in line, line
    assert "short5" not in line and "0123456789ab" not in line and "p" * 20 not in line  # no passphrase quoted


@pytest.mark.parametrize("url", ["srt://127.0.0.1:5848?mode=caller&passphrase=0123456789&pbkeylen=16&latency=120000",
                                 "srt://:5848?mode=listener", "srt://127.0.0.1:5848"])
def test_srt_options_libsrt_takes_are_accepted(url):
    daemon_config(_config(url))


@pytest.mark.skipif(not program_has("srt"), reason="this ffmpeg has no libsrt")
@pytest.mark.parametrize("url, said", REFUSED[:4])
def test_ffmpeg_refuses_the_same_options_at_once_whatever_the_sender(url, said):
    """No sender listens on the port: the option is refused before any connection is tried, so retrying cannot help."""
    done = subprocess.run(["ffprobe", "-v", "error", "-rw_timeout", "2000000", "-i", url], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode != 0
    assert any(word in done.stderr for word in ("SRTO_PASSPHRASE", "SRTO_PBKEYLEN", "Invalid argument")), done.stderr
