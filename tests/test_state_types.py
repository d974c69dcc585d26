"""The state's TypedDicts (its shape for the type checker) and its field tables (its run-time checks) agree."""

from __future__ import annotations

import json
import typing

import pytest

from conftest import Project
from playlist_cron import config, metrics, outcomes, reads_file, records, state, status
from playlist_cron.outcomes import Outcome

PAIRS = [
    (records.State, state.STATE_FIELDS),
    (records.RunningRecord, state.RUNNING_FIELDS),
    (records.FailedVideoRecord, state.FAILED_VIDEO_FIELDS),
    (records.LogFailureRecord, state.LOG_FAILURE_FIELDS),
    (records.CollectionDueRecord, state.COLLECTION_DUE_FIELDS),
    (records.PlaylistReadRecord, reads_file.PLAYLIST_READ_FIELDS),
]


@pytest.mark.parametrize(("shape", "fields"), PAIRS, ids=[shape.__name__ for shape, _ in PAIRS])
def test_a_typed_dict_names_the_fields_of_its_table(shape: type, fields: dict[str, state.Field]) -> None:
    assert shape.__required_keys__ | shape.__optional_keys__ == set(fields)  # type: ignore[attr-defined]
    # Required in the table (absent is damage) is required in the type, and only those.
    assert shape.__required_keys__ == {name for name, field in fields.items() if field.required}  # type: ignore[attr-defined]


def test_the_literal_types_list_the_names_the_code_uses() -> None:
    assert set(typing.get_args(outcomes.CounterName)) == set(outcomes.COUNTERS)
    assert set(typing.get_args(outcomes.OutcomeName)) == set(outcomes.OUTCOMES) == set(metrics.OUTCOMES)
    assert set(typing.get_args(outcomes.RanOutcome)) == set(outcomes.OUTCOMES) - {"SKIPPED"}
    assert set(metrics.OUTCOMES.values()) <= set(outcomes.COUNTERS)
    hints = typing.get_type_hints(Outcome, globalns={**vars(outcomes), "Literal": typing.Literal})
    assert set(typing.get_args(hints["outcome"])) == {outcomes.OutcomeName, typing.Literal["NOT_DUE"]}


def test_an_empty_state_is_sound_and_has_every_field() -> None:
    empty = state.empty()
    assert state.validate(empty) == []
    assert set(empty) == set(state.STATE_FIELDS)


def test_the_status_types_name_the_fields_status_reports(project: Project) -> None:
    project.state_file.parent.mkdir(parents=True, exist_ok=True)
    project.state_file.write_text(
        json.dumps(
            state.empty()
            | {
                "network_failing_since": "2026-01-31T12:00:00.000Z",
                "failed_videos": {"feed v1": {"video_id": "v1", "attempts": 1}},
            }
        )
    )
    report = status.report(config.load(project.config_path))
    assert set(report) == set(records.Status.__annotations__)
    assert set(report["failed_videos"][0]) == set(records.FailedVideo.__annotations__)
    assert report["network_outage"] is not None
    assert set(report["network_outage"]) == set(records.NetworkOutage.__annotations__)
    assert set(report["playlists"][0]) == set(records.PlaylistReads.__annotations__)
    assert report["lock_holder"] is None  # no check holds the lock here; the shape's keys are those of as_dict
    assert set(records.HolderRecord.__annotations__) == {"pid", "started_at", "held_s"}
