"""Property tests of text normalization: the SQL macros (sql/normalize.sql) and prompt keys."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refusaldata.keys import normalize_prompt, prompt_id
from refusaldata.labelers.rules import prepare

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Arbitrary unicode plus text rich in what the macros treat specially: white space runs,
# curly quotes, markdown and punctuation heads, letters that change under lower().
SPECIAL = st.sampled_from([" ", "  ", " " * 40, "\n", "\r\n", "\t", "\u00a0", "\u2019", "\u2018", "\u201c",
                           "\u201d", "\u2032", "\u2033", "#", "**", "> ", "- ", "1.", "\U0001f600", "İ", "ẞ",
                           "Σ", "ß", "I'm", "Sorry", "can't"])
TEXT = st.one_of(st.text(), st.lists(st.one_of(SPECIAL, st.text(max_size=5)), max_size=30).map("".join))


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    prepare(connection)
    yield connection
    connection.close()


def _call(con, sql: str, **params):
    return con.sql(sql, params=params).fetchall()[0][0]


@SETTINGS
@given(text=TEXT)
def test_normalize_is_total_and_idempotent(con, text):
    once = _call(con, "SELECT rd_normalize($text)", text=text)
    assert isinstance(once, str)
    assert _call(con, "SELECT rd_normalize($text)", text=once) == once


@SETTINGS
@given(text=TEXT)
def test_normalized_text_has_single_spaces_and_no_padding(con, text):
    once = _call(con, "SELECT rd_normalize($text)", text=text)
    assert "  " not in once and not once.endswith(" ") and not once.startswith(" ")
    assert not any(c in once for c in "\n\r\t\u00a0\u2019\u2018\u201c\u201d")


@SETTINGS
@given(text=TEXT, k=st.integers(min_value=1, max_value=12))
def test_opening_of_a_short_text_is_the_whole_text(con, text, k):
    normalized = _call(con, "SELECT rd_normalize($text)", text=text)
    opening = _call(con, "SELECT rd_opening(rd_normalize($text), $k)", text=text, k=k)
    words = normalized.split(" ") if normalized else []
    if len(words) <= k:
        assert opening == normalized
    else:
        assert opening == " ".join(words[:k])
        assert normalized.startswith(opening + " ")


@SETTINGS
@given(text=TEXT, k=st.integers(min_value=1, max_value=12))
def test_opening_is_idempotent_and_monotone_in_k(con, text, k):
    opening = _call(con, "SELECT rd_opening(rd_normalize($text), $k)", text=text, k=k)
    assert _call(con, "SELECT rd_opening(rd_normalize($text), $k)", text=opening, k=k) == opening
    longer = _call(con, "SELECT rd_opening(rd_normalize($text), $k)", text=text, k=k + 1)
    assert longer.startswith(opening)


@SETTINGS
@given(text=TEXT)
def test_word_count_is_total_and_matches_python_split_on_squashed_text(con, text):
    words = _call(con, "SELECT rd_words($text)", text=text)
    assert isinstance(words, int) and words >= 0
    if not any(c.isspace() and c not in " \n\r\t\u00a0" for c in text):
        assert words == len(text.replace("\u00a0", " ").split())


@SETTINGS
@given(text=TEXT)
def test_phrase_is_total_and_idempotent(con, text):
    once = _call(con, "SELECT rd_phrase($text)", text=text)
    assert _call(con, "SELECT rd_phrase($text)", text=once) == once


@SETTINGS
@given(text=TEXT)
def test_prompt_normalization_is_idempotent_and_keys_agree(text):
    once = normalize_prompt(text)
    assert normalize_prompt(once) == once
    assert prompt_id(once) == prompt_id(text)
    assert len(prompt_id(text)) == 16 and set(prompt_id(text)) <= set("0123456789abcdef")


@SETTINGS
@given(text=TEXT)
def test_prompt_key_ignores_case_spacing_and_quote_style(text):
    variant = "  " + text.upper().replace("'", "\u2019").replace(" ", "\n ") + "\t"
    if normalize_prompt(text.upper()) == normalize_prompt(text.lower()):
        assert prompt_id(variant) == prompt_id(text.upper())
