# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import json
import os

import pytest

from mirror.history import HistoryStore, StateFileError, TaskHistory


def test_round_trip_and_atomic_replace(tmp_path):
    store = HistoryStore(str(tmp_path / "state.json"))
    assert store.load() == {}
    states = {"debian": TaskHistory(last_start=1.0, last_end=2.5, duration=1.5, result="success",
                                  exit_code=0, stage=2, upstream="u", upstream_index=1,
                                  last_success=2.5)}
    store.save(states)
    assert store.load() == states
    assert os.listdir(tmp_path) == ["state.json"]  # no temporary file left behind
    document = json.loads((tmp_path / "state.json").read_text())
    assert document["version"] == 1 and document["tasks"]["debian"]["stage"] == 2


def test_damaged_files_start_empty_and_are_kept_aside(tmp_path, caplog):
    path = tmp_path / "state.json"
    for number, text in enumerate(("{not json", "[]", '{"tasks": 3}', "\xff\xfe")):
        path.write_bytes(text.encode("latin-1"))
        assert HistoryStore(str(path)).load() == {}
        assert not path.exists()
        kept = sorted(tmp_path.glob("state.json.damaged-*"))
        assert kept and kept[-1].read_bytes() == text.encode("latin-1"), number
        for old in kept:
            old.unlink()
    assert "starting without history" in caplog.text


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "devzero", "hardlink"])
def test_a_state_path_that_is_not_a_plain_file_is_refused(tmp_path, kind):
    path = tmp_path / "state.json"
    if kind == "symlink":
        target = tmp_path / "elsewhere.json"
        target.write_text('{"tasks": {}}')
        path.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(path)  # a plain open() would hang here for ever
    elif kind == "directory":
        path.mkdir()
    elif kind == "devzero":
        path.symlink_to("/dev/zero")  # a plain read() would fill the memory
    else:
        other = tmp_path / "other.json"
        other.write_text('{"tasks": {}}')
        os.link(other, path)
    with pytest.raises(StateFileError, match=r"cannot use the state file .*state\.json"):
        HistoryStore(str(path)).load()


def test_an_oversized_state_file_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    path.write_text('{"tasks": {}}' + " " * 100)
    monkeypatch.setattr("mirror.history.MAX_STATE_BYTES", 50)
    with pytest.raises(StateFileError, match="more than the 50 allowed"):
        HistoryStore(str(path)).load()


def test_unknown_keys_and_wrong_types_are_ignored(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"tasks": {"a": {"result": "failed", "future": 1,
                                                "upstream_index": "x", "stage": [1]},
                                          "b": "nonsense"}}))
    states = HistoryStore(str(path)).load()
    assert states == {"a": TaskHistory(result="failed")}
