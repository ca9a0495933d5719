import math
import sys

import pytest

from storage_core import ConfigurationError, Limits, Message, ValidationError, _validate
from storage_core._validate import (
    check_id,
    check_max_history_size,
    check_table_rows,
    coerce_message,
    coerce_messages,
    decode_content,
    encode_content,
    encode_message,
    encode_messages,
)
from storage_core.backend import TableRow

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


def test_ids_and_roles_are_bounded_in_bytes() -> None:
    """255 characters may be 1020 bytes: PostgreSQL's index cannot hold three such
    ids, so every backend refuses an id or role over 800 bytes of UTF-8."""
    limits = Limits()
    assert check_id("user_id", "\N{GRINNING FACE}" * 200, limits) == "\N{GRINNING FACE}" * 200
    assert check_id("user_id", "é" * 400, Limits(max_id_length=800)) == "é" * 400
    with pytest.raises(ValidationError, match=r"^agent_id is 804 bytes as UTF-8; the limit is 800"):
        check_id("agent_id", "\N{GRINNING FACE}" * 201, limits)
    with pytest.raises(ValidationError, match=r"messages\[0\] role is 802 bytes as UTF-8"):
        encode_messages([{"role": "\N{GRINNING FACE}" * 200 + "é", "content": 1}], limits)


def test_max_history_size_has_a_documented_maximum() -> None:
    assert check_max_history_size(2**31 - 1) == 2**31 - 1
    for value in (2**31, 2**63, 2**64):
        with pytest.raises(
            ValidationError, match=rf"^max_history_size is {value}; the limit is 2147483647$"
        ):
            check_max_history_size(value)


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (10**4300, "content"),
        (-(10**4300), "content"),
        ([1, {"n": 10**5000}], r"content\[1\]\['n'\]"),
        ({"deep": [[10**4300]]}, r"content\['deep'\]\[0\]\[0\]"),
    ],
    ids=["10**4300", "-10**4300", "in-a-dict", "deep"],
)
def test_content_integers_are_bounded_to_what_can_be_read_back(
    content: object, where: str
) -> None:
    with pytest.raises(
        ValidationError, match=rf"^{where} is an integer of more than 4300 digits; the limit"
    ):
        encode_content(content, Limits())


def test_content_integer_at_the_bound_round_trips() -> None:
    for value in (10**4300 - 1, -(10**4300 - 1)):
        assert decode_content(encode_content([value], Limits())) == [value]


def test_content_integer_beyond_a_lowered_interpreter_limit_is_a_validation_error() -> None:
    """An application may lower ``sys.set_int_max_str_digits``: the encoder's
    ValueError becomes a ValidationError naming the content."""
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(1000)
    try:
        with pytest.raises(ValidationError, match=r"^messages\[0\] content cannot be encoded"):
            encode_messages([{"role": "u", "content": [10**2000]}], Limits())
    finally:
        sys.set_int_max_str_digits(previous)


def test_batch_bytes_are_bounded() -> None:
    limits = Limits(max_content_bytes=100, max_batch_bytes=250)
    fits = [{"role": "u", "content": "x" * n} for n in (98, 98, 48)]  # 100 + 100 + 50 bytes
    assert [len(text) for _, text, _ in encode_messages(fits, limits)] == [100, 100, 50]
    with pytest.raises(
        ValidationError,
        match=r"^messages\[0:3\] hold 251 bytes of content as UTF-8 JSON; the limit for a "
              r"batch \(max_batch_bytes\) is 250$",
    ):
        encode_messages([*fits[:2], {"role": "u", "content": "é" * 24 + "x"}], limits)


def test_default_batch_bytes_refuse_the_issues_batch_without_encoding_it_all() -> None:
    big = "x" * (4 * 1024 * 1024 - 2)
    batch = [{"role": "u", "content": big}] * 270
    with pytest.raises(ValidationError, match=r"^messages\[0:17\] hold 71303168 bytes"):
        encode_messages(batch, Limits(max_batch_size=1000))


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"max_id_length": 801}, "max_id_length is 801; the most any backend accepts is 800"),
        ({"max_batch_size": 10_001}, "max_batch_size is 10001; the most"),
        ({"max_batch_bytes": 256 * 2**20 + 1}, f"max_batch_bytes is {256 * 2**20 + 1}; the most"),
        ({"max_content_bytes": 256 * 2**20 + 1, "max_batch_bytes": 256 * 2**20},
         "max_content_bytes is 268435457; the most"),
        ({"max_content_bytes": 2000, "max_batch_bytes": 1000},
         r"max_content_bytes \(2000\) must not exceed max_batch_bytes \(1000\)"),
        ({"max_batch_bytes": 0}, "max_batch_bytes must be a positive int"),
        ({"max_batch_bytes": 2.0}, "max_batch_bytes must be a positive int"),
    ],
)
def test_limits_refuse_values_beyond_what_every_backend_accepts(
    options: dict[str, object], words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words):
        Limits(**options)  # type: ignore[arg-type]


def test_limits_at_their_hard_maxima() -> None:
    limits = Limits(**Limits.HARD_MAXIMA)
    assert Limits.HARD_MAXIMA == {
        "max_id_length": 800, "max_content_bytes": 256 * 2**20,
        "max_batch_bytes": 256 * 2**20, "max_batch_size": 10_000,
    }
    assert limits.max_batch_bytes == 256 * 2**20
    assert Limits().max_batch_bytes == 64 * 2**20


def _row(**fields: object) -> TableRow:
    base: dict[str, object] = {
        "user_id": "u", "session_id": "s", "agent_id": "a", "message_index": 0,
        "role": "user", "content": '"x"', "timestamp": 1,
    }
    return TableRow(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"message_index": 2**31}, r"^row 0 message_index must be an int from 0 to 2147483647"),
        ({"content": '"x"' + " " * 1000}, r"^row 0 content is 1003 bytes; the limit is 1000$"),
        ({"content": "1" + "0" * 4300}, r"^row 0 content cannot be decoded: .*4300 digits"),
        ({"content": "[" * 100_000}, r"^row 0 content is nested too deeply"),
        ({"role": "\N{GRINNING FACE}" * 200 + "é"}, r"^row 0 role is 802 bytes as UTF-8"),
        ({"session_id": "\N{GRINNING FACE}" * 201}, r"^row 0 session_id is 804 bytes"),
        ({"timestamp": 2**63}, r"^row 0 timestamp must be between 0 and 2\*\*63-1"),
    ],
)
def test_imported_rows_are_bounded_like_saves(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        check_table_rows([_row(**fields)], Limits(max_content_bytes=1000))


def test_imported_rows_obey_the_batch_limits() -> None:
    limits = Limits(max_content_bytes=1000, max_batch_bytes=2000, max_batch_size=3)
    assert check_table_rows([_row(message_index=2**31 - 1)], limits) == [
        _row(message_index=2**31 - 1)
    ]
    with pytest.raises(ValidationError, match=r"more than 3 rows; .*max_batch_size\) is 3$"):
        check_table_rows([_row(message_index=i) for i in range(4)], limits)
    heavy = [_row(message_index=i, content=f'"{"x" * 998}"') for i in range(3)]
    with pytest.raises(ValidationError, match=r"^rows 0 to 2 hold 3000 bytes of content; "):
        check_table_rows(heavy, limits)
