"""PHP-style form bodies, read strictly.

Bitrix24 posts events as `application/x-www-form-urlencoded` with PHP bracket keys
(`data[FIELDS][ID]=662&auth[member_id]=…`), which PHP un-flattens into nested arrays
[D:api-reference/events/index.md]. `parse_form` does the same, but refuses (`MalformedDelivery`)
what PHP would silently guess at — a key given twice, a key that is both a value and a table,
broken percent-encoding — so no two readers of a delivery can disagree on what it said.
`encode_form` is the inverse, for tests and the bench.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, TypeAlias

from connectors.errors import MalformedDelivery

FormValue: TypeAlias = "str | list[FormValue] | dict[str, FormValue]"

MAX_FIELDS = 1000  # PHP's max_input_vars; an event body has about fifteen
MAX_DEPTH = 8  # subscripts per key; events use two (`data[FIELDS][ID]`)

_BROKEN_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SUBSCRIPT = re.compile(r"\[([^\[\]]*)\]")
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")


def _shown(text: str) -> str:
    """A piece of an untrusted body, short enough for an error message."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _unquote(part: str, what: str) -> str:
    match = _BROKEN_PERCENT.search(part)
    if match:
        broken = part[match.start():match.start() + 3]
        raise MalformedDelivery(f"broken percent-encoding {broken!r} in {what}")
    raw = urllib.parse.unquote_to_bytes(part.replace("+", " "))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedDelivery(f"{what} is not UTF-8 once decoded "
                                f"(byte {error.start}: {error.reason})") from None


def _path(key: str) -> list[str]:
    """`data[FIELDS][ID]` → `["data", "FIELDS", "ID"]`; `x[]` → `["x", ""]`."""
    base, bracket, rest = key.partition("[")
    if not base or "]" in base:
        raise MalformedDelivery(f"field name {_shown(key)} does not start with a name")
    if _CONTROL.search(key):
        raise MalformedDelivery(f"field name {_shown(key)} contains a control character")
    path = [base]
    rest = bracket + rest
    position = 0
    while position < len(rest):
        match = _SUBSCRIPT.match(rest, position)
        if match is None:
            raise MalformedDelivery(f"field name {_shown(key)} is not name[key][key]…: "
                                    "unbalanced brackets or text after one")
        path.append(match.group(1))
        position = match.end()
    if len(path) - 1 > MAX_DEPTH:
        raise MalformedDelivery(f"field name {_shown(key)} nests {len(path) - 1} levels deep; "
                                f"at most {MAX_DEPTH} are accepted")
    return path


def _next_index(table: dict[str, Any], key: str) -> str:
    """The index PHP gives `x[]`: one past the largest index so far."""
    if not table:
        return "0"
    if not all(_INDEX.fullmatch(name) for name in table):
        raise MalformedDelivery(f"field name {_shown(key)} appends with [] to a table "
                                "that has named keys")
    return str(max(int(name) for name in table) + 1)


def _store(root: dict[str, Any], path: list[str], value: str, key: str) -> None:
    table = root
    for depth, segment in enumerate(path):
        if depth and segment == "":
            segment = _next_index(table, key)
        existing = table.get(segment)
        if depth == len(path) - 1:
            if existing is None:
                table[segment] = value
                return
            if isinstance(existing, dict):
                raise MalformedDelivery(f"field {_shown(key)} is both a value and a table")
            raise MalformedDelivery(f"field {_shown(key)} is given twice")
        if existing is None:
            existing = table[segment] = {}
        elif not isinstance(existing, dict):
            raise MalformedDelivery(f"field {_shown(key)} is both a value and a table")
        table = existing


def _listed(value: Any) -> FormValue:
    """Tables keyed 0, 1, 2… in that order become lists, as PHP's json_encode would show them."""
    if not isinstance(value, dict):
        return value
    items = {name: _listed(child) for name, child in value.items()}
    if list(items) == [str(index) for index in range(len(items))]:
        return list(items.values())
    return items


def parse_form(body: bytes) -> dict[str, FormValue]:
    """Un-flatten a form body into nested dicts (and lists for `x[]` or `x[0]`, `x[1]`…).

    Raises `MalformedDelivery` for a body that is not UTF-8, has broken percent-encoding or
    raw control characters, a key given twice or that is both a value and a table, keys
    nested more than `MAX_DEPTH` deep, or more than `MAX_FIELDS` fields."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedDelivery(f"body is not UTF-8 (byte {error.start}: {error.reason})") from None
    # a file or a curl may end in a newline; a file saved by an editor may begin with a BOM
    text = text.removeprefix("\ufeff").removesuffix("\n").removesuffix("\r")
    control = _CONTROL.search(text)
    if control:
        raise MalformedDelivery(f"body has a raw control character {control.group()!r} at "
                                f"{control.start()}; a form body percent-encodes them")
    pairs = [pair for pair in text.split("&") if pair]
    if len(pairs) > MAX_FIELDS:
        raise MalformedDelivery(f"body has {len(pairs)} fields; at most {MAX_FIELDS} are accepted")
    root: dict[str, Any] = {}
    for pair in pairs:
        raw_key, _, raw_value = pair.partition("=")
        key = _unquote(raw_key, f"field name {_shown(raw_key)}")
        _store(root, _path(key), _unquote(raw_value, f"the value of {_shown(key)}"), key)
    return {name: _listed(value) for name, value in root.items()}


def _flatten(key: str, value: Any, pairs: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        for name, child in value.items():
            name = str(name)
            if "[" in name or "]" in name:
                raise ValueError(f"key {name!r} under {key!r} contains a bracket")
            _flatten(f"{key}[{name}]", child, pairs)
    elif isinstance(value, list | tuple):
        for index, child in enumerate(value):
            _flatten(f"{key}[{index}]", child, pairs)
    elif value is None:
        return  # as PHP's http_build_query: a null field is left out
    elif isinstance(value, bool):
        pairs.append((key, "1" if value else "0"))
    elif isinstance(value, str | int | float):
        pairs.append((key, str(value)))
    else:
        raise TypeError(f"cannot form-encode {type(value).__name__} at {key!r}")


def encode_form(data: Mapping[str, Any]) -> bytes:
    """A nested dict as the form body Bitrix24 would post: bracket keys, percent-encoded
    (`{"data": {"FIELDS": {"ID": 662}}}` → `data%5BFIELDS%5D%5BID%5D=662`). Numbers become
    strings, lists get indexes, None is left out; empty tables and lists vanish, as in PHP."""
    pairs: list[tuple[str, str]] = []
    for name, value in data.items():
        name = str(name)
        if not name or "[" in name or "]" in name:
            raise ValueError(f"top-level key {name!r} must be a non-empty name without brackets")
        _flatten(name, value, pairs)
    return urllib.parse.urlencode(pairs).encode("ascii")
