"""JSON of the value encoding: orjson when installed, the standard library for what it refuses."""

import datetime
import math

from snakepit_bridge import _wire


def test_json_round_trips_and_stays_compact():
    value = {"a": [1, 2.5, "é", None, True], "b": {"c": (1, 2)}}
    raw = _wire.encode_json(value)
    assert b" " not in raw
    assert _wire.loads_json(raw) == {"a": [1, 2.5, "é", None, True], "b": {"c": [1, 2]}}


def test_values_orjson_refuses_fall_back_to_the_standard_library():
    assert _wire.encode_json(2**70) == b"1180591620717411303424"
    assert _wire.encode_json({1: "x"}) == b'{"1":"x"}'
    assert math.isnan(_wire.loads_json(b"NaN"))


def test_dates_follow_the_graceful_rules():
    when = datetime.date(2026, 12, 1)
    assert _wire.loads_json(_wire.encode_json({"d": when})) == {"d": "2026-12-01"}
