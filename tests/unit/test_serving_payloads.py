"""Request validation without a server: every bad `/predict` song and every bad v2 tensor is a
RequestError with the right status whose message and field name the offending field, and good input
becomes exactly the [N, F] matrix the model is given."""

import copy
import json

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headliner.model.onnx_packaging import feature_schema
from headliner.serving.payloads import FeatureRules, RequestError, parse_json
from tests.helpers.payloads import SONG, SONG_ROW, v2_request


@pytest.fixture(scope="module")
def rules(jukebox_spec) -> FeatureRules:
    return FeatureRules(feature_schema(jukebox_spec))


def song(**changes):
    return {**SONG, **changes}


def rejected(call, *args) -> RequestError:
    with pytest.raises(RequestError) as caught:
        call(*args)
    return caught.value


# -- friendly JSON -----------------------------------------------------------------------------------


def test_one_song_becomes_one_row_in_schema_order_with_booleans_as_numbers(rules):
    assert rules.names == list(SONG)
    matrix = rules.songs_matrix(parse_json(orjson.dumps(SONG)), max_rows=10)
    assert matrix.dtype == np.float64
    assert matrix.tolist() == [SONG_ROW]


def test_a_list_of_songs_becomes_one_row_each_in_order(rules):
    songs = [song(tempo=100.0), song(is_explicit=False, key=0), song(is_explicit=1, mode=0, key=11.0)]
    matrix = rules.songs_matrix(songs, max_rows=3)
    assert matrix.shape == (3, 13)
    assert matrix[:, 12].tolist() == [100.0, 121.5, 121.5]
    assert matrix[:, 0].tolist() == [1.0, 0.0, 1.0]
    assert matrix[:, 4].tolist() == [5.0, 0.0, 11.0]  # 11.0 is a whole number: a valid key
    assert matrix[:, 6].tolist() == [1.0, 1.0, 0.0]


def test_missing_field_is_named(rules):
    bad = dict(SONG)
    del bad["tempo"]
    error = rejected(rules.songs_matrix, bad, 10)
    assert (error.status, error.field) == (422, "song.tempo")
    assert error.message == "song: missing field 'tempo'"


def test_extra_field_is_named(rules):
    error = rejected(rules.songs_matrix, song(genre="pop"), 10)
    assert (error.status, error.field) == (422, "song.genre")
    assert "unknown field 'genre'" in error.message


def test_misspelled_field_gets_a_suggestion(rules):
    bad = dict(SONG)
    bad["tempoo"] = bad.pop("tempo")
    error = rejected(rules.songs_matrix, bad, 10)
    assert (error.status, error.field) == (422, "song.tempoo")
    assert "unknown field 'tempoo' (did you mean 'tempo'?)" in error.message
    assert "missing field 'tempo'" in error.message


@pytest.mark.parametrize(
    "value, described",
    [("120", "the string '120'"), (None, "null"), ([120], "list [120]"), (True, "bool True"), ({"bpm": 120}, "dict")],
)
def test_wrong_type_for_a_number_is_named_with_what_was_sent(rules, value, described):
    error = rejected(rules.songs_matrix, song(tempo=value), 10)
    assert (error.status, error.field) == (422, "song.tempo")
    assert error.message.startswith("song.tempo: expected a number in [30, 250] BPM, got ")
    assert described in error.message


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("tempo", 300, "a number in [30, 250] BPM, got 300"),
        ("loudness", 3.5, "a number in [-60, 0] dB, got 3.5"),
        ("duration_ms", 5000, "an integer in [10000, 1200000] ms, got 5000"),
        ("key", 12, "an integer in [0, 11], got 12"),
        ("danceability", -0.1, "a number in [0, 1], got -0.1"),
        ("is_explicit", 2, "0/1 or false/true, got 2"),
    ],
)
def test_out_of_range_names_the_field_and_its_range(rules, field, value, expected):
    error = rejected(rules.songs_matrix, song(**{field: value}), 10)
    assert (error.status, error.field) == (422, f"song.{field}")
    assert error.message == f"song.{field}: expected {expected}"


def test_non_integer_for_an_integer_feature_is_named(rules):
    error = rejected(rules.songs_matrix, song(key=5.5), 10)
    assert (error.status, error.field) == (422, "song.key")
    assert error.message == "song.key: expected an integer in [0, 11], got 5.5"


@pytest.mark.parametrize("literal, shown", [(b"NaN", "nan"), (b"Infinity", "inf"), (b"-Infinity", "-inf")])
def test_nan_and_infinity_literals_parse_and_are_rejected_by_field(rules, literal, shown):
    body = orjson.dumps(song(tempo=0.0)).replace(b'"tempo":0.0', b'"tempo":' + literal)
    assert literal in body
    payload = parse_json(body)
    assert str(payload["tempo"]) == shown
    error = rejected(rules.songs_matrix, payload, 10)
    assert (error.status, error.field) == (422, "song.tempo")
    assert error.message.endswith(f"got {shown}")


def test_empty_body_is_a_400():
    error = rejected(parse_json, b"")
    assert error.status == 400
    assert "empty request body" in error.message


@pytest.mark.parametrize("body", [b"{", b'{"tempo": 120,}', b"songs", b"\xff\xfe"])
def test_invalid_json_is_a_400(body):
    error = rejected(parse_json, body)
    assert error.status == 400
    assert error.message.startswith("invalid JSON")


def test_a_song_in_a_list_that_is_not_an_object_is_named_by_position(rules):
    error = rejected(rules.songs_matrix, [SONG, 5], 10)
    assert (error.status, error.field) == (422, "songs[1]")
    assert error.message == "songs[1]: expected an object of features, got int 5"


def test_a_bad_field_in_a_list_names_the_song_position(rules):
    error = rejected(rules.songs_matrix, [SONG, SONG, song(energy="high")], 10)
    assert (error.status, error.field) == (422, "songs[2].energy")


@pytest.mark.parametrize("payload", ["a song", 42, None])
def test_a_body_that_is_neither_a_song_nor_a_list_is_rejected(rules, payload):
    error = rejected(rules.songs_matrix, payload, 10)
    assert error.status == 422
    assert "expected a JSON object (one song) or a list of objects" in error.message


def test_an_empty_list_is_a_422(rules):
    error = rejected(rules.songs_matrix, [], 10)
    assert error.status == 422
    assert "empty" in error.message


def test_a_batch_over_max_rows_is_a_422(rules):
    error = rejected(rules.songs_matrix, [SONG] * 3, 2)
    assert error.status == 422
    assert error.message == "3 songs in one request; at most 2 are accepted"
    assert rules.songs_matrix([SONG] * 2, 2).shape == (2, 13)


# -- Open Inference Protocol -------------------------------------------------------------------------


def test_v2_one_input_per_feature_shape_n_1_like_the_workshop_notebook(rules):
    matrix = rules.v2_matrix(v2_request(), max_rows=10)
    assert matrix.tolist() == [SONG_ROW]


def test_v2_inputs_in_any_order_and_shape_n(rules):
    request = v2_request(rows=2, shape_of=lambda rows: [rows])
    request["inputs"].reverse()
    request["inputs"][0]["data"] = [100.0, 200.0]  # tempo
    matrix = rules.v2_matrix(request, max_rows=10)
    assert matrix.shape == (2, 13)
    assert matrix[:, 12].tolist() == [100.0, 200.0]
    assert matrix[0].tolist()[:12] == SONG_ROW[:12]


def test_v2_single_input_n_by_13_in_schema_order(rules):
    request = {"inputs": [{"name": "songs", "shape": [2, 13], "datatype": "FP64", "data": SONG_ROW + SONG_ROW}]}
    assert rules.v2_matrix(request, max_rows=10).tolist() == [SONG_ROW, SONG_ROW]
    nested = {"inputs": [{"name": "songs", "shape": [2, 13], "datatype": "FP32", "data": [SONG_ROW, SONG_ROW]}]}
    assert rules.v2_matrix(nested, max_rows=10).tolist() == [SONG_ROW, SONG_ROW]


def test_v2_per_feature_input_of_shape_1_by_2_is_rejected(rules):
    request = v2_request()
    request["inputs"][3]["shape"] = [1, 2]
    request["inputs"][3]["data"] = [0.5, 0.5]
    error = rejected(rules.v2_matrix, request, 10)
    assert (error.status, error.field) == (400, "inputs[3].shape")
    assert error.message == "inputs[3] 'energy': shape must be [N, 1] or [N], got [1, 2]"


def test_v2_single_input_with_12_columns_is_rejected(rules):
    request = {"inputs": [{"name": "songs", "shape": [1, 12], "datatype": "FP32", "data": SONG_ROW[:12]}]}
    error = rejected(rules.v2_matrix, request, 10)
    assert (error.status, error.field) == (400, "inputs[0].shape")
    assert "a single input must have shape [N, 13], got [1, 12]" in error.message


def test_v2_non_numeric_datatype_is_rejected(rules):
    request = v2_request()
    request["inputs"][12]["datatype"] = "BYTES"
    error = rejected(rules.v2_matrix, request, 10)
    assert (error.status, error.field) == (400, "inputs[12].datatype")
    assert error.message.startswith("inputs[12] 'tempo': datatype 'BYTES' is not numeric")


def test_v2_misspelled_input_name_gets_a_suggestion(rules):
    request = v2_request()
    request["inputs"][12]["name"] = "tempoo"
    error = rejected(rules.v2_matrix, request, 10)
    assert (error.status, error.field) == (400, "inputs.tempoo")
    assert "unknown input 'tempoo' (did you mean 'tempo'?)" in error.message
    assert "missing input 'tempo'" in error.message


def test_v2_unknown_extra_input_is_rejected(rules):
    request = v2_request()
    request["inputs"].append({"name": "genre", "shape": [1, 1], "datatype": "FP32", "data": [1.0]})
    error = rejected(rules.v2_matrix, request, 10)
    assert (error.status, error.field) == (400, "inputs.genre")
    assert "unknown input 'genre'" in error.message


def test_v2_duplicate_input_is_rejected(rules):
    request = v2_request()
    request["inputs"][12] = copy.deepcopy(request["inputs"][4])  # 'key' twice, no 'tempo'
    error = rejected(rules.v2_matrix, request, 10)
    assert error.status == 400
    assert error.message == "input 'key' is given twice"


@pytest.mark.parametrize("payload", [{}, {"inputs": []}, {"inputs": "songs"}, {"outputs": []}])
def test_v2_missing_or_empty_inputs_is_rejected(rules, payload):
    error = rejected(rules.v2_matrix, payload, 10)
    assert (error.status, error.field) == (400, "inputs")
    assert "'inputs' must be a non-empty list" in error.message


def test_v2_request_that_is_not_an_object_is_rejected(rules):
    error = rejected(rules.v2_matrix, [v2_request()], 10)
    assert error.status == 400
    assert "expected a JSON object with 'inputs'" in error.message


@pytest.mark.parametrize("key", ["name", "shape", "datatype", "data"])
def test_v2_tensor_missing_a_key_is_rejected(rules, key):
    request = v2_request()
    del request["inputs"][2][key]
    error = rejected(rules.v2_matrix, request, 10)
    assert (error.status, error.field) == (400, f"inputs[2].{key}")
    assert error.message == f"inputs[2]: missing '{key}'"


def test_v2_data_length_not_matching_shape_is_rejected(rules):
    request = v2_request()
    request["inputs"][5]["data"] = [-5.5, -6.0]
    error = rejected(rules.v2_matrix, request, 10)
    assert (error.status, error.field) == (400, "inputs[5].data")
    assert error.message == "inputs[5] 'loudness': shape [1, 1] needs 1 values, data has 2"

    request["inputs"][5]["data"] = [[-5.5], [-6.0, -7.0]]  # nested data is read row-major, ragged or not
    error = rejected(rules.v2_matrix, request, 10)
    assert error.message == "inputs[5] 'loudness': shape [1, 1] needs 1 values, data has 3"


@pytest.mark.parametrize("data", [["120"], ["fast"], [None], [[1.0], ["2"]], "120"])
def test_v2_data_that_is_not_numbers_is_rejected(rules, data):
    request = v2_request()
    request["inputs"][12]["data"] = data
    error = rejected(rules.v2_matrix, request, 10)
    assert (error.status, error.field) == (400, "inputs[12].data")
    assert error.message.startswith("inputs[12] 'tempo': data must")


@pytest.mark.parametrize("shape", [[-1, 1], [], "1", [1.0, 1]])
def test_v2_bad_shape_is_rejected(rules, shape):
    request = v2_request()
    request["inputs"][0]["shape"] = shape
    error = rejected(rules.v2_matrix, request, 10)
    assert (error.status, error.field) == (400, "inputs[0].shape")


def test_v2_inputs_with_different_row_counts_are_rejected(rules):
    request = v2_request()
    request["inputs"][12].update(shape=[2, 1], data=[120.0, 130.0])
    error = rejected(rules.v2_matrix, request, 10)
    assert (error.status, error.field) == (400, "inputs[12].shape")
    assert error.message == "inputs[12] 'tempo': 2 rows, but the first input has 1"


@pytest.mark.parametrize(
    "feature, value, why",
    [
        ("tempo", 300.0, "expected a number in [30, 250] BPM, got 300"),
        ("key", 5.5, "expected an integer in [0, 11], got 5.5"),
        ("loudness", float("nan"), "expected a number in [-60, 0] dB, got nan"),
        ("duration_ms", float("inf"), "expected an integer in [10000, 1200000] ms, got inf"),
    ],
)
def test_v2_invalid_values_name_the_feature_and_row(rules, feature, value, why):
    request = v2_request(rows=2)
    tensor = next(t for t in request["inputs"] if t["name"] == feature)
    tensor["data"][1] = value
    error = rejected(rules.v2_matrix, request, 10)
    assert (error.status, error.field) == (422, feature)
    assert error.message == f"input '{feature}', row 1: {why}"


def test_v2_rows_over_max_rows_is_a_422(rules):
    error = rejected(rules.v2_matrix, v2_request(rows=3), 2)
    assert (error.status, error.field) == (422, "inputs")
    assert error.message == "3 rows in one request; at most 2 are accepted"


def test_v2_zero_rows_is_rejected(rules):
    error = rejected(rules.v2_matrix, v2_request(rows=0), 10)
    assert (error.status, error.field) == (400, "inputs")
    assert "no rows" in error.message


# -- matrix checks (v2 tensors, batch files) ---------------------------------------------------------


def test_invalid_rows_and_row_problems_name_every_bad_value(rules):
    matrix = np.array(
        [
            SONG_ROW,
            [*SONG_ROW[:4], 5.5, *SONG_ROW[5:12], 300.0],  # key not whole, tempo too fast
            [*SONG_ROW[:5], np.nan, *SONG_ROW[6:]],  # loudness missing
            [0.0, 10000.0, 0.0, 1.0, 0.0, -60.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 30.0],  # every bound
        ]
    )
    assert rules.invalid_rows(matrix).tolist() == [False, True, True, False]
    assert rules.row_problems(matrix[0]) == []
    assert rules.row_problems(matrix[1]) == [
        ("key", "expected an integer in [0, 11], got 5.5"),
        ("tempo", "expected a number in [30, 250] BPM, got 300"),
    ]
    assert rules.row_problems(matrix[2]) == [("loudness", "expected a number in [-60, 0] dB, got nan")]
    error = rejected(rules.check_matrix, matrix, "column")
    assert (error.status, error.field) == (422, "key")
    assert error.message == "column 'key', row 1: expected an integer in [0, 11], got 5.5"
    rules.check_matrix(matrix[[0, 3]], "column")  # valid rows pass


def test_expected_describes_each_feature_kind(rules):
    assert rules.expected(0) == "0/1 or false/true"
    assert rules.expected(1) == "an integer in [10000, 1200000] ms"
    assert rules.expected(5) == "a number in [-60, 0] dB"
    assert rules.expected(12) == "a number in [30, 250] BPM"
    unbounded = FeatureRules([{"name": "x", "dtype": "float"}, {"name": "n", "dtype": "int", "min": None, "max": None}])
    assert unbounded.expected(0) == "a number (finite)"
    assert unbounded.expected(1) == "an integer (finite)"
    with pytest.raises(ValueError, match="unsupported dtype 'str'"):
        FeatureRules([{"name": "genre", "dtype": "str"}])


def test_request_error_body_carries_the_field_only_when_there_is_one():
    assert RequestError(422, "bad", "song.tempo").body() == {"error": "bad", "field": "song.tempo"}
    assert RequestError(400, "bad").body() == {"error": "bad"}


@pytest.mark.parametrize("rows", [1, 3, 40])  # 40 rows x 13 values take the vectorized check
def test_v2_out_of_range_names_feature_and_row_whatever_the_size(rules, rows):
    request = v2_request(rows)
    request["inputs"][12]["data"][rows - 1] = 400.0
    error = rejected(rules.v2_matrix, request, 100)
    assert (error.status, error.field) == (422, "tempo")
    assert error.message == f"input 'tempo', row {rows - 1}: expected a number in [30, 250] BPM, got 400"

    single = {
        "inputs": [
            {
                "name": "x",
                "shape": [rows, 13],
                "datatype": "FP64",
                "data": [[SONG[name] for name in SONG] for _ in range(rows)],
            }
        ]
    }
    single["inputs"][0]["data"][rows - 1][1] = 5  # duration_ms
    error = rejected(rules.v2_matrix, single, 100)
    assert error.message == f"input 'duration_ms', row {rows - 1}: expected an integer in [10000, 1200000] ms, got 5"


# -- the compiled path (msgspec) agrees with the plain one ---------------------------------------------

VALUES = st.one_of(
    st.integers(-3, 3),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-2.0, 2.0),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.lists(st.integers(0, 1), max_size=2),
)


def outcome(call, *args):
    """A call's matrix, or its RequestError as (status, message, field)."""
    try:
        return call(*args).tolist()
    except RequestError as error:
        return (error.status, error.message, error.field)


@st.composite
def songs(draw):
    """A song near the schema: up to two values replaced by anything; a field dropped or added."""
    item = dict(SONG)
    for name in draw(st.lists(st.sampled_from(list(SONG)), max_size=2)):
        item[name] = draw(VALUES)
    if draw(st.integers(0, 4)) == 0:
        item.pop(draw(st.sampled_from(list(SONG))), None)
    if draw(st.integers(0, 4)) == 0:
        item[draw(st.sampled_from(["tempo", "extra", "Tempo"]))] = draw(VALUES)
    return item


@settings(max_examples=400, deadline=None)
@given(body=st.one_of(songs(), st.lists(songs(), max_size=3), VALUES))
def test_predict_bodies_get_the_same_matrix_or_error_from_both_paths(rules, body):
    raw = json.dumps(body).encode()  # big integers too, as JSON allows them
    assert outcome(rules.songs_matrix_of, raw, 2) == outcome(lambda: rules.songs_matrix(parse_json(raw), 2))


@st.composite
def inference_requests(draw):
    """A v2 request near the workshop notebook's: a part of up to two tensors changed; tensors dropped or
    reordered."""
    rows = draw(st.integers(1, 2))
    request = v2_request(rows=rows)
    for tensor in draw(st.lists(st.sampled_from(request["inputs"]), max_size=2)):
        part = draw(st.sampled_from(["name", "shape", "datatype", "data", "data", "parameters"]))
        if part == "data":  # mostly as many values as rows, of any kind
            same_length = st.lists(VALUES, min_size=rows, max_size=rows)
            tensor["data"] = draw(st.one_of(same_length, same_length, st.lists(VALUES, max_size=3)))
        elif part == "shape":
            tensor["shape"] = draw(st.sampled_from([[1], [2], [1, 1], [2, 1], [1, 2], [], [-1, 1], [1.0, 1]]))
        elif part == "datatype":
            tensor["datatype"] = draw(st.sampled_from(["FP64", "INT32", "BYTES", "fp32"]))
        elif part == "name":
            tensor["name"] = draw(st.sampled_from(["tempo", "temp", 5]))
        elif part == "parameters":
            tensor["parameters"] = draw(st.one_of(st.none(), st.just({"a": 1}), st.just([1])))
    if draw(st.integers(0, 3)) == 0:
        request["inputs"] = draw(st.permutations(request["inputs"]))[: draw(st.integers(0, 14))]
    for key, choices in (("id", [None, "r-1", 7]), ("outputs", [None, [{"name": "label"}], [{"name": "x"}], "label"])):
        choice = draw(st.sampled_from(choices))
        if choice is not None:
            request[key] = choice
    return request


@settings(max_examples=400, deadline=None)
@given(request=inference_requests())
def test_v2_requests_the_compiled_path_takes_get_the_plain_paths_matrix_or_error(rules, request):
    raw = json.dumps(request).encode()
    slow = outcome(lambda: rules.v2_matrix(parse_json(raw), 2))
    try:
        decoded = rules.v2_request_of(raw, 2)
    except RequestError as error:
        assert slow == (error.status, error.message, error.field)
        return
    if decoded is not None:  # None: the plain path decides
        assert decoded.matrix.tolist() == slow
        assert decoded.id == request.get("id") and isinstance(decoded.id, str | None)
        assert decoded.outputs == (None if "outputs" not in request else [o["name"] for o in request["outputs"]])
