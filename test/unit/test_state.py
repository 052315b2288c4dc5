# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import json
import os

from mirror.state import StateStore, TaskState


def test_round_trip_and_atomic_replace(tmp_path):
    store = StateStore(str(tmp_path / "state.json"))
    assert store.load() == {}
    states = {"debian": TaskState(last_start=1.0, last_end=2.5, duration=1.5, result="success",
                                  exit_code=0, stage=2, upstream="u", upstream_index=1,
                                  last_success=2.5)}
    store.save(states)
    assert store.load() == states
    assert os.listdir(tmp_path) == ["state.json"]  # no temporary file left behind
    document = json.loads((tmp_path / "state.json").read_text())
    assert document["version"] == 1 and document["tasks"]["debian"]["stage"] == 2


def test_damaged_files_start_empty(tmp_path, caplog):
    path = tmp_path / "state.json"
    for text in ("{not json", "[]", '{"tasks": 3}'):
        path.write_text(text)
        assert StateStore(str(path)).load() == {}
    assert "starting without history" in caplog.text


def test_unknown_keys_and_wrong_types_are_ignored(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"tasks": {"a": {"result": "failed", "future": 1,
                                                "upstream_index": "x", "stage": [1]},
                                          "b": "nonsense"}}))
    states = StateStore(str(path)).load()
    assert states == {"a": TaskState(result="failed")}
