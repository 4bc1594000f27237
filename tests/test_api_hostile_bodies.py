"""Bodies a hostile client sends answer 400 saying what is wrong, never 500, and start nothing."""

from __future__ import annotations

import json

import pytest

from test_api_handler import executions, moto_aws, post, sfn  # noqa: F401 - the moto fixtures

DEEP = 100_000


@pytest.mark.parametrize("body, message", [
    ("[" * DEEP + "]" * DEEP, "nested too deeply"),
    ('{"videoId": ' + "[" * DEEP + "]" * DEEP + "}", "nested too deeply"),
    ('{"videoId": "clip-1", "videoId": "clip-2"}', "repeats a field"),
    ('{"videoId": "clip-1", "videoId": "clip-1"}', "repeats a field"),
], ids=["deeply nested body", "deeply nested videoId", "two videoIds", "the same videoId twice"])
def test_hostile_body_answers_400_and_starts_nothing(sfn, body, message):  # noqa: F811
    code, answer = post(body)
    assert code == 400 and message in answer["message"], answer
    assert executions(sfn) == []


def test_a_valid_body_with_unique_fields_is_still_accepted(sfn):  # noqa: F811
    assert post(json.dumps({"videoId": "clip-1"}))[0] == 202
