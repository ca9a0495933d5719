import math

import pytest

from storage_core import Limits, Message, ValidationError, _validate
from storage_core._validate import (
    check_id,
    check_max_history_size,
    coerce_message,
    coerce_messages,
    decode_content,
    encode_content,
    encode_message,
    encode_messages,
)

LIMITS = Limits(max_content_bytes=1000, max_id_length=10, max_batch_size=3)


@pytest.fixture(params=["orjson", "stdlib"], autouse=True)
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with orjson encoding content and with the standard
    library alone (as on an interpreter without orjson): same results."""
    if request.param == "stdlib":
        monkeypatch.setattr(_validate, "_fast_dumps", None)
    elif _validate._fast_dumps is None:
        pytest.skip("orjson is not installed")
    return str(request.param)


@pytest.mark.parametrize(
    ("value", "words"),
    [("", "empty"), (3, "string"), ("x" * 11, "limit"), ("a\x00b", "NUL"), ("\ud800", "surrogate")],
)
def test_bad_ids(value: object, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        check_id("user_id", value, LIMITS)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3"])
def test_bad_max_history_size(value: object) -> None:
    with pytest.raises(ValidationError, match="max_history_size"):
        check_max_history_size(value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ({1, 2}, "set"),
        (b"x", "bytes"),
        (object(), "object"),
        ([math.nan], "NaN"),
        ({"x": math.inf}, "Infinity"),
        ((1, 2), "tuple"),
        ({1: "a"}, "key"),
        ("x" * 2000, "limit"),
        (["\udc00"], "surrogate"),
    ],
)
def test_bad_content(content: object, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        encode_content(content, LIMITS)


def _contains_itself() -> list[object]:
    loop: list[object] = [1]
    loop.append({"again": loop})
    return loop


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (_contains_itself(), "contains itself"),
        ({"a": [math.nan, _contains_itself()]}, "contains itself"),
        ([[0]] * 600, "more values than its size limit of 1000 bytes"),
    ],
)
def test_content_that_cannot_be_json_fails_fast(content: object, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        encode_content(content, Limits(max_content_bytes=1000 if "1000" in words else 2**22))


@pytest.mark.parametrize("leaf", [None, math.nan, (1,)], ids=["plain", "nan", "tuple"])
def test_content_nested_deeper_than_the_encoder_goes_is_refused(leaf: object) -> None:
    value: object = [leaf]
    for _ in range(5_000):
        value = [value]
    with pytest.raises(ValidationError, match="nested too deeply"):
        encode_content(value, Limits())


@pytest.mark.parametrize(
    "content",
    [
        2**70,
        -(2**64),
        [1e-7, 1e300, -0.0, 5e-324],
        {"deep": [[[[[[[[[[[]]]]]]]]]]]},
        "x" * 999 + "é",
    ],
)
def test_content_round_trips_exactly_whichever_encoder(content: object) -> None:
    text = encode_content(content, Limits())
    back = decode_content(text)
    assert back == content and type(back) is type(content)
    assert repr(back) == repr(content)


def test_content_round_trip_keeps_unicode() -> None:
    content = [{"text": "héllo 👋 مرحبا \x01 \x00"}, 1, 2.5, None, True, {"n": -0.0}]
    text = encode_content(content, LIMITS)
    assert "👋" in text  # not escaped to \\u sequences
    assert decode_content(text) == content


def test_message_shapes() -> None:
    class Obj:
        def __init__(self) -> None:
            self.role = "user"
            self.content = [{"text": "x"}]

    for shape in (Message("user", [{"text": "x"}]), {"role": "user", "content": [{"text": "x"}]},
                  Obj()):
        assert coerce_message(shape, LIMITS) == Message("user", [{"text": "x"}])
    with pytest.raises(ValidationError, match="role"):
        coerce_message({"role": "", "content": []}, LIMITS)
    with pytest.raises(ValidationError, match="role"):
        coerce_message({"role": 1, "content": []}, LIMITS)
    with pytest.raises(ValidationError, match="'role' and 'content'"):
        coerce_message({"content": []}, LIMITS)
    with pytest.raises(ValidationError, match="timestamp"):
        coerce_message({"role": "u", "content": [], "timestamp": "now"}, LIMITS)


def test_batch_limits() -> None:
    assert coerce_messages([], LIMITS) == []
    with pytest.raises(ValidationError, match="limit is 3"):
        coerce_messages([{"role": "u", "content": 1}] * 4, LIMITS)
    with pytest.raises(ValidationError, match="list of messages"):
        coerce_messages({"role": "u", "content": 1}, LIMITS)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ([{"text": "\ud800"}], "surrogate"),
        ([{"text": "x" * 2000}], "limit"),
        ([{"text": "a"}] * 400, "limit"),
        ([{"text": "a"}, {"text": 1.5, "x": math.nan}], "NaN"),
        ([{"text": "a"}, ("tuple",)], "tuple"),
    ],
)
def test_bad_content_in_the_usual_shape(content: object, words: str) -> None:
    """Lists of text blocks skip the generic walk; what they hold is still checked."""
    with pytest.raises(ValidationError, match=words):
        encode_content(content, LIMITS)


def test_errors_name_the_message_of_a_batch() -> None:
    good = {"role": "user", "content": [{"text": "x"}]}
    with pytest.raises(ValidationError, match=r"messages\[2\] content\[0\]\['x'\] is nan"):
        encode_messages([good, good, {"role": "a", "content": [{"x": math.nan}]}], LIMITS)
    with pytest.raises(ValidationError, match=r"messages\[1\] role must not be empty"):
        encode_messages([good, {"role": "", "content": []}], LIMITS)
    with pytest.raises(ValidationError, match=r"messages\[0\] timestamp must be an int"):
        encode_messages([{"role": "u", "content": [], "timestamp": 1.0}], LIMITS)
    with pytest.raises(ValidationError, match=r"messages\[1\] content is \d+ bytes as JSON"):
        encode_messages([good, {"role": "u", "content": "x" * 2000}], LIMITS)
    with pytest.raises(ValidationError, match=r"^message content is \d+ bytes"):
        encode_message({"role": "u", "content": "x" * 2000}, LIMITS)


def test_encode_message_gives_role_json_and_timestamp() -> None:
    assert encode_message({"role": "user", "content": [{"text": "é"}], "timestamp": 5},
                          LIMITS) == ("user", '[{"text":"é"}]', 5)
    assert encode_messages([Message("a", None)], LIMITS) == [("a", "null", None)]
