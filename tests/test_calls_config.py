"""The ``[calls]`` and ``[debug]`` settings: loaded from the config file, nonsense refused at
start-up with the setting's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from sferumd import config


def load(tmp_path: Path, text: str) -> config.Settings:
    path = tmp_path / "sferumd.toml"
    path.write_text(text)
    return config.load(path)


def test_defaults_and_overrides(tmp_path: Path) -> None:
    assert config.load(None).calls.max_breakout_rooms == 50
    assert config.load(None).debug.test_clock is False
    s = load(
        tmp_path,
        '[calls]\nwhiteboard_burst = 5\nwhiteboard_ops_per_s = 2\ntime_zone = "Asia/Yekaterinburg"'
        "\n[debug]\ntest_clock = true\n",
    )
    assert (s.calls.whiteboard_burst, s.calls.whiteboard_ops_per_s) == (5, 2.0)
    assert s.calls.time_zone == "Asia/Yekaterinburg" and s.debug.test_clock is True


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[calls]\nmax_breakout_rooms = 0\n", "calls.max_breakout_rooms"),
        ("[calls]\nbreakout_warning_s = -1\n", "calls.breakout_warning_s"),
        ("[calls]\nwhiteboard_max_width = 2.0\n", "calls.whiteboard_max_width"),
        ('[calls]\ntime_zone = "Mars/Olympus"\n', "calls.time_zone"),
        ('[calls]\nmax_call_s = "6h"\n', "calls.max_call_s"),
        ("[calls]\nmax_rooms = 5\n", "calls.max_rooms"),
        ('[debug]\ntest_clock = "yes"\n', "debug.test_clock"),
    ],
)
def test_nonsense_is_refused_by_name(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace(".", r"\.")):
        load(tmp_path, text)
