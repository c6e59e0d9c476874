"""PHP-style form bodies: un-flattening as PHP does, strict refusals, and the encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.bitrix24.form import encode_form, parse_form
from connectors.errors import MalformedDelivery

FIXTURES = Path(__file__).parent / "fixtures"


def test_outgoing_webhook_body_as_php_reads_it() -> None:
    body = (FIXTURES / "event_ONCRMDEALUPDATE.outgoing_webhook.form.txt").read_bytes()
    assert parse_form(body) == {
        "event": "ONCRMDEALUPDATE",
        "data": {"FIELDS": {"ID": "662"}},
        "ts": "1724140800",
        "auth": {
            "domain": "example.bitrix24.com",
            "member_id": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "application_token": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        },
    }


def test_unencoded_brackets_read_the_same() -> None:
    assert parse_form(b"data[FIELDS][ID]=662&auth[member_id]=m1") == {
        "data": {"FIELDS": {"ID": "662"}}, "auth": {"member_id": "m1"}}


def test_plus_and_percent_decoding() -> None:
    assert parse_form(b"a=hello+world%21&b=%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82&c=%2B") == {
        "a": "hello world!", "b": "привет", "c": "+"}


def test_empty_pairs_skipped_and_bare_key_is_empty_value() -> None:
    assert parse_form(b"a=1&&b&c=") == {"a": "1", "b": "", "c": ""}


def test_trailing_newline_tolerated() -> None:
    assert parse_form(b"a=1\r\n") == {"a": "1"}


def test_appended_keys_make_a_list() -> None:
    assert parse_form(b"x[]=a&x[]=b") == {"x": ["a", "b"]}


def test_numeric_keys_in_order_make_a_list() -> None:
    assert parse_form(b"y[0][id]=1&y[1][id]=2") == {"y": [{"id": "1"}, {"id": "2"}]}


def test_numeric_keys_out_of_order_stay_a_table() -> None:
    assert parse_form(b"z[1]=a&z[0]=b") == {"z": {"1": "a", "0": "b"}}


def test_numbered_keys_then_appended() -> None:
    assert parse_form(b"x[0]=a&x[]=b") == {"x": ["a", "b"]}


def test_empty_body() -> None:
    assert parse_form(b"") == {}


@pytest.mark.parametrize(("body", "message"), [
    (b"a=\xff", "body is not UTF-8 (byte 2: invalid start byte)"),
    (b"a=%zz", "broken percent-encoding '%zz' in the value of 'a'"),
    (b"a=%4", "broken percent-encoding '%4' in the value of 'a'"),
    (b"a%5=1", "broken percent-encoding '%5' in field name 'a%5'"),
    (b"a=%ff", "the value of 'a' is not UTF-8 once decoded (byte 0: invalid start byte)"),
    (b"a=1\x00", "body has a raw control character '\\x00' at 3; a form body percent-encodes "
                 "them"),
    (b"a=1&a=2", "field 'a' is given twice"),
    (b"auth[application_token]=x&auth[application_token]=y",
     "field 'auth[application_token]' is given twice"),
    (b"a=1&a[b]=2", "field 'a[b]' is both a value and a table"),
    (b"a[b]=1&a=2", "field 'a' is both a value and a table"),
    (b"a[b]=1&a[b][c]=2", "field 'a[b][c]' is both a value and a table"),
    (b"a[b=1", "field name 'a[b' is not name[key][key]…: unbalanced brackets or text after one"),
    (b"a[b]c=1",
     "field name 'a[b]c' is not name[key][key]…: unbalanced brackets or text after one"),
    (b"a[b[c]]=1",
     "field name 'a[b[c]]' is not name[key][key]…: unbalanced brackets or text after one"),
    (b"[a]=1", "field name '[a]' does not start with a name"),
    (b"=1", "field name '' does not start with a name"),
    (b"a%0A=1", "field name 'a\\n' contains a control character"),
    (b"a[1][2][3][4][5][6][7][8][9]=1",
     "field name 'a[1][2][3][4][5][6][7][8][9]' nests 9 levels deep; at most 8 are accepted"),
    (b"a[x]=1&a[]=2", "field name 'a[]' appends with [] to a table that has named keys"),
    (b"&".join(b"f%d=1" % n for n in range(1001)),
     "body has 1001 fields; at most 1000 are accepted"),
])
def test_malformed(body: bytes, message: str) -> None:
    with pytest.raises(MalformedDelivery) as caught:
        parse_form(body)
    assert caught.value.detail == message
    assert caught.value.status == 400


def test_eight_levels_accepted() -> None:
    assert parse_form(b"a[1][2][3][4][5][6][7][x]=1") == {
        "a": {"1": {"2": {"3": {"4": {"5": {"6": {"7": {"x": "1"}}}}}}}}}


def test_encode_as_php_http_build_query() -> None:
    assert encode_form({
        "event": "ONCRMDEALUPDATE",
        "data": {"FIELDS": {"ID": 662}, "LIST": ["a", "b c"], "EMPTY": {}, "NULL": None},
        "flags": {"yes": True, "no": False},
        "auth": {"client_endpoint": "https://example.bitrix24.com/rest/"},
    }) == (b"event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=662&data%5BLIST%5D%5B0%5D=a"
           b"&data%5BLIST%5D%5B1%5D=b+c&flags%5Byes%5D=1&flags%5Bno%5D=0"
           b"&auth%5Bclient_endpoint%5D=https%3A%2F%2Fexample.bitrix24.com%2Frest%2F")


def test_encoded_fixture_equals_the_raw_one() -> None:
    raw = (FIXTURES / "event_ONCRMDEALUPDATE.outgoing_webhook.form.txt").read_bytes()
    assert encode_form(parse_form(raw)) == raw.rstrip(b"\n")


@pytest.mark.parametrize("data", [{"a[b]": "1"}, {"": "1"}, {"a": {"b]": "1"}}])
def test_encode_refuses_keys_with_brackets(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        encode_form(data)


def test_encode_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        encode_form({"a": object()})


# Names that are not all digits: a table keyed 0, 1, 2… reads back as a list, by design.
_names = st.text(st.characters(blacklist_characters="[]", blacklist_categories=("Cc", "Cs")),
                 min_size=1, max_size=8).filter(lambda name: not name.isdigit())


def _values(depth: int) -> st.SearchStrategy[Any]:
    text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
    if depth == 0:
        return text
    child = _values(depth - 1)
    return st.one_of(text, st.dictionaries(_names, child, min_size=1, max_size=3),
                     st.lists(child, min_size=1, max_size=3))


@given(st.dictionaries(_names, _values(4), min_size=1, max_size=4))
def test_parse_reads_back_what_encode_wrote(data: dict[str, Any]) -> None:
    assert parse_form(encode_form(data)) == data
