"""Request bodies to model inputs: the friendly `/predict` JSON and Open Inference Protocol (KServe v2)
tensors both become one float matrix [N, F] checked against the model's feature schema, and every
problem is a `RequestError` that names the field, so bad input is a 4xx and never reaches the model.

A body is first decoded by msgspec into types built from the schema, which parses and checks a valid
request in one pass of compiled code; a body it refuses goes through the plain-Python path (`parse_json`,
`songs_matrix`, `v2_matrix`), which names what is wrong, so both paths accept the same requests."""

from __future__ import annotations

import difflib
import json
import math
import reprlib
from collections.abc import Sequence
from typing import Annotated, Any, Literal, NamedTuple, NoReturn

import msgspec
import numpy as np
import orjson

# Open Inference Protocol datatypes that carry numbers.
NUMERIC_DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}
)


class RequestError(Exception):
    """A client error: `status` is the HTTP status (400 malformed, 422 invalid values), `field` the
    path of the offending field (e.g. `songs[2].tempo`, `items[0].price`, `inputs[0].shape`) when there is one."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field} if self.field else {"error": self.message}


def parse_json(body: bytes) -> Any:
    """Strict JSON; a body whose only fault is NaN/Infinity literals parses, so the value check can name
    the field instead of reporting a syntax error."""
    if not body:
        raise RequestError(400, "empty request body: send a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
            raise RequestError(400, f"invalid JSON: {exc}") from None


def check_parameters(holder: dict[str, Any], field: str) -> None:
    """An Open Inference Protocol `parameters` (of a request, an input or an output): absent, null or an object."""
    parameters = holder.get("parameters")
    if parameters is not None and type(parameters) is not dict:
        raise RequestError(400, f"{field}: expected an object, got {_describe(parameters)}", field)


def number_text(value: float) -> str:
    """A number as people write it: 1200000, not 1.2e+06."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if value is None:
        return "null"
    # reprlib: a huge or deeply nested list is shown in part (str() would build all of it, or recurse too deep)
    return f"{type(value).__name__} {_SHORT.repr(value)[:40]}"


def _too_large(values: Sequence[Any]) -> int | None:
    """The position of the first integer beyond float64's range (JSON allows any size), if any."""
    return next((i for i, value in enumerate(values) if type(value) is int and abs(value) > _FLOAT_MAX), None)


class FeatureRules:
    """The model's feature schema as checks: names and order, integer features (a boolean is an integer
    in [0, 1] that may also be sent as false/true), valid ranges, finite values. `item` names one item of a
    friendly request in the paths of errors: `song.tempo` for one, `songs[2].tempo` in a list."""

    def __init__(self, feature_schema: Sequence[dict[str, Any]], item: str = "song"):
        self.item, self.items = item, f"{item}s"
        self.schema = list(feature_schema)
        self.names: list[str] = [entry["name"] for entry in feature_schema]
        self._name_set = frozenset(self.names)
        self._rules = []  # (name, dtype, lower, upper, whole)
        for entry in feature_schema:
            dtype = entry.get("dtype", "float")
            if dtype not in ("float", "int", "bool"):
                raise ValueError(f"feature '{entry['name']}': unsupported dtype '{dtype}'")
            lower = 0.0 if dtype == "bool" else -math.inf if entry.get("min") is None else float(entry["min"])
            upper = 1.0 if dtype == "bool" else math.inf if entry.get("max") is None else float(entry["max"])
            self._rules.append((entry["name"], dtype, lower, upper, dtype != "float"))
        self._units = [entry.get("unit") for entry in feature_schema]
        self._lower = np.array([rule[2] for rule in self._rules])
        self._upper = np.array([rule[3] for rule in self._rules])
        self._whole = np.array([rule[4] for rule in self._rules])
        struct = _song_struct(self._rules)
        self._songs_decoder = msgspec.json.Decoder(struct | list[struct])  # type: ignore[valid-type]

    @property
    def width(self) -> int:
        return len(self.names)

    def expected(self, position: int) -> str:
        """What a valid value of a feature is, in words."""
        _, dtype, lower, upper, _ = self._rules[position]
        if dtype == "bool":
            return "0/1 or false/true"
        kind = "an integer" if dtype == "int" else "a number"
        if math.isinf(lower) and math.isinf(upper):
            return f"{kind} (finite)"
        unit = f" {self._units[position]}" if self._units[position] else ""
        return f"{kind} in [{number_text(lower)}, {number_text(upper)}]{unit}"

    def _value_ok(self, position: int, value: float) -> bool:
        _, _, lower, upper, whole = self._rules[position]
        return math.isfinite(value) and lower <= value <= upper and (not whole or value == int(value))

    def _field_mismatch(self, given: Sequence[str], where: str, what: str = "field", status: int = 422) -> RequestError:
        unknown = [name for name in given if name not in self._name_set]
        missing = [name for name in self.names if name not in given]
        parts = []
        for name in unknown:
            close = difflib.get_close_matches(str(name), self.names, n=1)
            parts.append(f"unknown {what} '{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        if missing:
            parts.append(f"missing {what}{'s' if len(missing) > 1 else ''} " + ", ".join(f"'{n}'" for n in missing))
        return RequestError(status, f"{where}: " + "; ".join(parts), f"{where}.{(unknown or missing)[0]}")

    # -- friendly JSON -------------------------------------------------------------------------------

    def songs_matrix_of(self, body: bytes, max_rows: int) -> np.ndarray:
        """The raw body of `POST /predict` -> [N, F] float64 raw values (see `songs_matrix`)."""
        try:
            decoded = self._songs_decoder.decode(body)
        except msgspec.DecodeError:  # also any value the types refuse: the plain path names it
            return self.songs_matrix(parse_json(body), max_rows)
        songs = decoded if type(decoded) is list else [decoded]
        if songs and len(songs) <= max_rows:
            matrix = np.array([msgspec.structs.astuple(song) for song in songs], dtype=np.float64)
            if np.isfinite(matrix).all():  # an unbounded float feature may have decoded as inf
                return matrix
        return self.songs_matrix(parse_json(body), max_rows)

    def songs_matrix(self, payload: Any, max_rows: int) -> np.ndarray:
        """One item (a JSON object of features) or a list of them -> [N, F] float64 raw values."""
        songs: Sequence[Any]
        item, items = self.item, self.items
        if type(payload) is dict:
            songs, single = (payload,), True
        elif type(payload) is list:
            songs, single = payload, False
            if not songs:
                raise RequestError(422, f"the list of {items} is empty: send at least one")
            if len(songs) > max_rows:
                raise RequestError(422, f"{len(songs)} {items} in one request; at most {max_rows} are accepted")
        else:
            raise RequestError(
                422, f"expected a JSON object (one {item}) or a list of objects, got {_describe(payload)}"
            )
        rules, name_set = self._rules, self._name_set
        rows = []
        for index, song in enumerate(songs):
            if type(song) is not dict:
                where = f"{items}[{index}]"
                raise RequestError(422, f"{where}: expected an object of features, got {_describe(song)}", where)
            if song.keys() != name_set:
                raise self._field_mismatch(list(song), item if single else f"{items}[{index}]")
            row = []
            for position, (name, dtype, lower, upper, whole) in enumerate(rules):
                value = song[name]
                kind = type(value)
                if kind is bool and dtype == "bool":
                    value = int(value)
                elif kind is not float and kind is not int:
                    raise self._bad(single, index, position, f"got {_describe(value)}")
                if value - value != 0 or not lower <= value <= upper or (whole and value != int(value)):  # NaN, inf
                    raise self._bad(single, index, position, f"got {value}")
                row.append(value)
            rows.append(row)
        try:
            return np.array(rows, dtype=np.float64)
        except OverflowError:  # only an unbounded feature lets such an integer through
            index, row = next((i, row) for i, row in enumerate(rows) if _too_large(row) is not None)
            raise self._bad(single, index, _too_large(row) or 0, "got an integer beyond a 64-bit float") from None

    def _bad(self, single: bool, index: int, position: int, got: str) -> RequestError:
        field = f"{self.item if single else f'{self.items}[{index}]'}.{self.names[position]}"
        return RequestError(422, f"{field}: expected {self.expected(position)}, {got}", field)

    # -- checks shared by v2 tensors and batch files -------------------------------------------------

    def invalid_rows(self, matrix: np.ndarray) -> np.ndarray:
        """Boolean mask [N]: rows with a non-finite, out-of-range or non-integral (integer feature) value."""
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(matrix) | (matrix < self._lower) | (matrix > self._upper)
            whole = matrix[:, self._whole]
            bad[:, self._whole] |= whole != np.round(whole)
        rows: np.ndarray = bad.any(axis=1)
        return rows

    def row_problems(self, row: Sequence[float] | np.ndarray) -> list[tuple[str, str]]:
        """(feature, why) for each invalid value of one row."""
        return [
            (self.names[position], f"expected {self.expected(position)}, got {number_text(value)}")
            for position, value in enumerate(row)
            if not self._value_ok(position, float(value))
        ]

    def check_matrix(self, matrix: np.ndarray, what: str) -> None:
        """Raise for the first invalid value of a matrix (first bad row, then its first bad feature)."""
        bad = self.invalid_rows(matrix)
        if bad.any():
            row = int(np.argmax(bad))
            self._raise_for_row(what, row, matrix[row])

    def _raise_for_row(self, what: str, row: int, values: Sequence[float] | np.ndarray) -> NoReturn:
        feature, why = self.row_problems(values)[0]
        raise RequestError(422, f"{what} '{feature}', row {row}: {why}", feature)

    # -- Open Inference Protocol -----------------------------------------------------------------------

    def v2_request_of(self, body: bytes, max_rows: int) -> DecodedInference | None:
        """The raw body of a v2 infer request in its common layout (one flat tensor per feature, shape [N, 1]
        or [N], N within `max_rows`), decoded and its values checked (RequestError 422 as `v2_matrix`); None
        for any other body, which `v2_matrix` and the app's own checks then take from `parse_json`."""
        try:
            request = _INFERENCE_DECODER.decode(body)
        except msgspec.DecodeError:
            return None
        tensors = request.inputs
        if len(tensors) != self.width:
            return None
        by_name = {tensor.name: tensor.data for tensor in tensors}
        rows = len(tensors[0].data)
        if by_name.keys() != self._name_set or not 0 < rows <= max_rows:
            return None
        for tensor in tensors:
            if (tensor.shape != [rows] and tensor.shape != [rows, 1]) or len(tensor.data) != rows:
                return None
        matrix = self._checked_matrix([by_name[name] for name in self.names])
        outputs = None if request.outputs is None else [output.name for output in request.outputs]
        return DecodedInference(matrix, request.id, outputs)

    def v2_matrix(self, payload: Any, max_rows: int) -> np.ndarray:
        """A v2 infer request -> [N, F] float64. Accepted layouts: one input per feature named as the
        feature, shape [N, 1] or [N]; or one input of shape [N, F] with the features in schema order."""
        if type(payload) is not dict:
            raise RequestError(400, f"expected a JSON object with 'inputs', got {_describe(payload)}")
        inputs = payload.get("inputs")
        if type(inputs) is not list or not inputs:
            raise RequestError(400, "'inputs' must be a non-empty list of tensors", "inputs")
        tensors = [self._v2_tensor(tensor, index) for index, tensor in enumerate(inputs)]
        width = self.width
        if len(tensors) == 1 and len(tensors[0][2]) == 2 and tensors[0][2][1] == width:
            rows, flat = tensors[0][2][0], tensors[0][1]
            self._check_rows_limit(rows, max_rows)
            columns = [flat[position::width] for position in range(width)]
        else:
            columns = self._v2_columns(tensors)
            rows = len(columns[0])
            self._check_rows_limit(rows, max_rows)
        return self._checked_matrix(columns)

    def _checked_matrix(self, columns: list[list[Any]]) -> np.ndarray:
        """One list of values per feature (schema order) -> [N, F] float64, every value checked."""
        try:
            matrix = np.array(columns, dtype=np.float64).T
        except OverflowError:
            name = next(self.names[i] for i, column in enumerate(columns) if _too_large(column) is not None)
            raise RequestError(422, f"input '{name}': an integer beyond a 64-bit float", name) from None
        if matrix.size <= SCALAR_CHECK_LIMIT:  # a few rows: plain comparisons beat numpy's fixed costs
            self._check_columns(columns)
        else:
            self.check_matrix(matrix, "input")
        return matrix

    def _v2_columns(self, tensors: list[tuple[str, list[Any], list[int]]]) -> list[list[Any]]:
        """Per-feature tensors -> their values in schema order, checking names and shapes."""
        names = [name for name, _, _ in tensors]
        if len(names) != self.width or set(names) != self._name_set:
            if len(tensors) == 1:
                raise RequestError(
                    400,
                    f"inputs[0] '{names[0]}': a single input must have shape [N, {self.width}], got {tensors[0][2]}",
                    "inputs[0].shape",
                )
            duplicate = next((name for name in names if names.count(name) > 1), None)
            if duplicate:
                raise RequestError(400, f"input '{duplicate}' is given twice", "inputs")
            raise self._field_mismatch(names, "inputs", what="input", status=400)
        by_name = {}
        rows = tensors[0][2][0]
        for index, (name, values, shape) in enumerate(tensors):
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise RequestError(
                    400, f"inputs[{index}] '{name}': shape must be [N, 1] or [N], got {shape}", f"inputs[{index}].shape"
                )
            if shape[0] != rows:
                raise RequestError(
                    400,
                    f"inputs[{index}] '{name}': {shape[0]} rows, but the first input has {rows}",
                    f"inputs[{index}].shape",
                )
            by_name[name] = values
        return [by_name[name] for name in self.names]

    @staticmethod
    def _check_rows_limit(rows: int, max_rows: int) -> None:
        if rows == 0:
            raise RequestError(400, "the inputs hold no rows", "inputs")
        if rows > max_rows:
            raise RequestError(422, f"{rows} rows in one request; at most {max_rows} are accepted", "inputs")

    def _check_columns(self, columns: list[list[Any]]) -> None:
        """`check_matrix` for values still in Python lists (one list per feature, schema order)."""
        for row, values in enumerate(zip(*columns, strict=True)):
            for position, value in enumerate(values):
                if not self._value_ok(position, value):
                    self._raise_for_row("input", row, values)

    @staticmethod
    def _v2_tensor(tensor: Any, index: int) -> tuple[str, list[Any], list[int]]:
        """(name, flat list of numbers, shape) of one v2 input tensor, its structure checked."""
        where = f"inputs[{index}]"
        if type(tensor) is not dict:
            raise RequestError(400, f"{where}: expected a tensor object, got {_describe(tensor)}", where)
        try:
            name, shape, datatype, data = tensor["name"], tensor["shape"], tensor["datatype"], tensor["data"]
        except KeyError as missing:
            raise RequestError(400, f"{where}: missing {missing}", f"{where}.{missing.args[0]}") from None
        if type(name) is not str:
            raise RequestError(400, f"{where}.name: expected a string, got {_describe(name)}", f"{where}.name")
        check_parameters(tensor, f"{where}.parameters")
        path, where = where, f"{where} '{name}'"
        if type(shape) is not list or not shape or not _INT_TYPE.issuperset(map(type, shape)) or min(shape) < 0:
            raise RequestError(
                400, f"{where}: shape must be a list of non-negative integers, got {shape!r}", f"{path}.shape"
            )
        if datatype not in NUMERIC_DATATYPES:
            raise RequestError(
                400,
                f"{where}: datatype {datatype!r} is not numeric; send FP32 (or another numeric type)",
                f"{path}.datatype",
            )
        if type(data) is not list:
            raise RequestError(400, f"{where}: data must be a list of numbers, got {_describe(data)}", f"{path}.data")
        values = data if _NUMBER_TYPES.issuperset(map(type, data)) else _flatten(data)
        if values is None:  # strings ("120" too), null, objects
            raise RequestError(400, f"{where}: data must hold only numbers", f"{path}.data")
        expected = math.prod(shape)
        if len(values) != expected:
            raise RequestError(
                400, f"{where}: shape {shape} needs {expected} values, data has {len(values)}", f"{path}.data"
            )
        return name, values, shape


def _song_struct(rules: Sequence[tuple[str, str, float, float, bool]]) -> type[msgspec.Struct]:
    """A msgspec type of one item (an object of every feature, nothing else) whose values the rules accept:
    numbers in range, integers for integer features, 0/1 or false/true for booleans. Its fields are f0, f1,
    ... in schema order (a feature's name need not be an identifier), named as the features in JSON."""
    fields: list[tuple[str, Any]] = []
    for position, (_, dtype, lower, upper, _) in enumerate(rules):
        if dtype == "bool":
            kind: Any = bool | Annotated[int, msgspec.Meta(ge=0, le=1)]
        elif dtype == "int":  # an integer x is within [lower, upper] when within [ceil(lower), floor(upper)]
            ge = math.ceil(lower) if math.isfinite(lower) else None
            le = math.floor(upper) if math.isfinite(upper) else None
            kind = Annotated[int, msgspec.Meta(ge=ge, le=le)]
        else:
            ge_float = lower if math.isfinite(lower) else None
            le_float = upper if math.isfinite(upper) else None
            kind = Annotated[float, msgspec.Meta(ge=ge_float, le=le_float)]
        fields.append((f"f{position}", kind))
    rename = {f"f{position}": rule[0] for position, rule in enumerate(rules)}
    return msgspec.defstruct("Item", fields, forbid_unknown_fields=True, rename=rename)


class Tensor(msgspec.Struct):
    """A v2 input tensor with flat numeric data (nested data and booleans take the plain path)."""

    name: str
    shape: list[Annotated[int, msgspec.Meta(ge=0)]]
    datatype: Literal[
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"
    ]
    data: list[float]
    parameters: dict[str, Any] | None = None


class RequestedOutput(msgspec.Struct):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(msgspec.Struct):
    inputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestedOutput] | None = None


_INFERENCE_DECODER = msgspec.json.Decoder(InferenceRequest)


class DecodedInference(NamedTuple):
    """A v2 infer request decoded by `FeatureRules.v2_request_of`: its checked matrix [N, F], its `id`, the
    names of its requested outputs (None: not given)."""

    matrix: np.ndarray
    id: str | None
    outputs: list[str] | None


_NUMBER_TYPES = frozenset({int, float, bool})
_INT_TYPE = frozenset({int})
SCALAR_CHECK_LIMIT = 256  # values; more are checked with numpy
_FLOAT_MAX = float(np.finfo(np.float64).max)
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 4, 8, 4, 40, 40


def _flatten(data: list[Any]) -> list[Any] | None:
    """Nested lists of numbers (row-major, as some clients send tensors) -> one flat list; None if any
    element is not a number. Iterative: a list nested a thousand deep is refused, not a RecursionError."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            kind = type(item)
            if kind is list:
                stack.append(iter(item))
                break
            if kind not in _NUMBER_TYPES:
                return None
            flat.append(item)
        else:
            stack.pop()
    return flat
