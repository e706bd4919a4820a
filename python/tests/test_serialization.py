"""Graceful serialization of values JSON cannot hold, and the seed-compatible TypeSerializer."""

import dataclasses
import datetime
import decimal
import json
import math
import uuid

import pytest

from snakepit_bridge._wire import encode_any, encode_json, to_jsonable
from snakepit_bridge.serialization import TypeSerializer


@dataclasses.dataclass
class Point:
    x: int
    y: float


class Opaque:
    def __repr__(self):
        return "<Opaque 7>"


def test_values_json_cannot_hold_become_valid_json():
    value = {
        "nan": float("nan"),
        "inf": float("inf"),
        "ninf": -float("inf"),
        "when": datetime.datetime(2024, 5, 6, 7, 8, 9),
        "day": datetime.date(2024, 5, 6),
        "span": datetime.timedelta(seconds=90),
        "price": decimal.Decimal("1.10"),
        "tags": {"b", "a"},
        "blob": b"\x00\x01",
        "point": Point(1, 2.5),
        "id": uuid.UUID(int=1),
        "thing": Opaque(),
        3: "int key",
        "nested": [(1, 2), {"deep": float("nan")}],
    }
    decoded = json.loads(encode_json(value))
    assert decoded == {
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "when": "2024-05-06T07:08:09",
        "day": "2024-05-06",
        "span": 90.0,
        "price": "1.10",
        "tags": ["a", "b"],
        "blob": "AAE=",
        "point": {"x": 1, "y": 2.5},
        "id": "00000000-0000-0000-0000-000000000001",
        "thing": {"__type__": "test_serialization.Opaque", "__repr__": "<Opaque 7>"},
        "3": "int key",
        "nested": [[1, 2], {"deep": "NaN"}],
    }


def test_plain_json_and_integers_are_kept():
    assert json.loads(encode_json({"n": 5, "f": 2.5, "l": [1, "x", None, True]})) == {"n": 5, "f": 2.5, "l": [1, "x", None, True]}
    assert encode_any(5).type_url.endswith("snakepit.integer")
    assert json.loads(encode_any(float("nan")).value) == "NaN"


def test_circular_structures_do_not_raise():
    loop = []
    loop.append(loop)
    assert isinstance(json.loads(encode_json(loop)), list)


def test_numpy_values_become_lists_and_numbers():
    # numpy is not a dependency: these objects follow its array and scalar protocol.
    class FakeArray:
        shape = (2,)
        dtype = "float32"

        def tolist(self):
            return [1.0, float("nan")]

    class FakeScalar:
        dtype = "int64"

        def item(self):
            return 7

    assert to_jsonable({"a": FakeArray(), "s": FakeScalar()}) == {"a": [1.0, "NaN"], "s": 7}


def test_type_serializer_round_trips_typed_values_and_never_unpickles():
    any_msg, side = TypeSerializer.encode_any(float("inf"), "float")
    assert side is None
    assert any_msg.type_url == "type.googleapis.com/snakepit.float"
    assert math.isinf(TypeSerializer.decode_any(any_msg))
    any_msg, _ = TypeSerializer.encode_any(3.0, "integer")
    assert TypeSerializer.decode_any(any_msg) == 3
    assert TypeSerializer.decode_any(any_msg, binary_data=b"\x80\x04pickle") == b"\x80\x04pickle"
    with pytest.raises(ValueError):
        TypeSerializer.encode_any("x", "float")
    with pytest.raises(ValueError, match="below minimum"):
        TypeSerializer.validate_constraints(1, "integer", {"min": 2})
