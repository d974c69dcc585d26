"""The state's TypedDicts (its shape for the type checker) and its field tables (its run-time checks) agree."""

from __future__ import annotations

import typing

import pytest

from playlist_cron import metrics, state
from playlist_cron.check import Outcome

PAIRS = [
    (state.State, state.STATE_FIELDS),
    (state.RunningRecord, state.RUNNING_FIELDS),
    (state.FailedVideoRecord, state.FAILED_VIDEO_FIELDS),
    (state.LogFailureRecord, state.LOG_FAILURE_FIELDS),
]


@pytest.mark.parametrize(("shape", "fields"), PAIRS, ids=[shape.__name__ for shape, _ in PAIRS])
def test_a_typed_dict_names_the_fields_of_its_table(shape: type, fields: dict[str, state.Field]) -> None:
    assert shape.__required_keys__ | shape.__optional_keys__ == set(fields)  # type: ignore[attr-defined]
    # Required in the table (absent is damage) is required in the type, and only those.
    assert shape.__required_keys__ == {name for name, field in fields.items() if field.required}  # type: ignore[attr-defined]


def test_the_literal_types_list_the_names_the_code_uses() -> None:
    assert set(typing.get_args(state.CounterName)) == set(state.COUNTERS)
    assert set(typing.get_args(state.OutcomeName)) == set(state.OUTCOMES) == set(metrics.OUTCOMES)
    assert set(typing.get_args(state.RanOutcome)) == set(state.OUTCOMES) - {"SKIPPED"}
    assert set(metrics.OUTCOMES.values()) <= set(state.COUNTERS)
    hints = typing.get_type_hints(Outcome, globalns=vars(state))
    assert hints["outcome"] == state.OutcomeName


def test_an_empty_state_is_sound_and_has_every_field() -> None:
    empty = state.empty()
    assert state.validate(empty) == []
    assert set(empty) == set(state.STATE_FIELDS)
