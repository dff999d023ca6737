from __future__ import annotations

from pathlib import Path

import pytest

from hispeed.config import Settings
from hispeed.errors import ConfigError


def test_defaults() -> None:
    s = Settings.load(None, env={})
    assert (s.host, s.port, s.data_dir, s.fsync) == (
        "127.0.0.1",
        8088,
        Path("hispeed-data"),
        "1000ms",
    )


def test_layers_file_then_environment_then_overrides(tmp_path: Path) -> None:
    conf = tmp_path / "hispeed.toml"
    conf.write_text('[hispeed]\nport = 9000\nfsync = "always"\ndefault_partitions = 4\n')
    s = Settings.load(conf, env={"HISPEED_PORT": "9100"})
    assert (s.port, s.fsync, s.default_partitions) == (9100, "always", 4)
    s = Settings.load(conf, env={"HISPEED_PORT": "9100"}, port=9200, fsync=None)
    assert (s.port, s.fsync) == (9200, "always")


def test_config_file_from_environment(tmp_path: Path) -> None:
    conf = tmp_path / "x.toml"
    conf.write_text("auto_create_topics = false\n")
    assert Settings.load(None, env={"HISPEED_CONFIG": str(conf)}).auto_create_topics is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HISPEED_PORT": "eighty"}, "setting 'port' cannot be 'eighty'"),
        ({"HISPEED_AUTO_CREATE_TOPICS": "maybe"}, "auto_create_topics"),
    ],
)
def test_bad_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load(None, env=env)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 1")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        Settings.load(bad, env={})
