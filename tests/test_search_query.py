"""Parsing of plain, image and rclip-style combined queries."""

from __future__ import annotations

import pytest
from PIL import Image

from fastslow_desktop.search import SearchError, parse_query
from fastslow_desktop.search.query import QueryTerm, request_terms


def test_plain_text_is_one_text_term_even_with_hyphens_and_colons():
    for text in ["a red circle", "a red-circle", "2:30 pm at the beach", "  an orange star.  "]:
        assert parse_query(text).terms == (QueryTerm("text", text.strip()),)


def test_combined_query_splits_on_standalone_plus_and_minus_with_signs():
    parsed = parse_query('"red circle" + path/to/photo.jpg - "blue"')
    assert parsed.terms == (QueryTerm("text", "red circle", 1.0), QueryTerm("image", "path/to/photo.jpg", 1.0),
                            QueryTerm("text", "blue", -1.0))
    assert parsed.positive_texts == [(1.0, "red circle")]


def test_weights_are_read_before_quotes_and_in_combined_queries():
    assert parse_query('2:"red circle"').terms == (QueryTerm("text", "red circle", 2.0),)
    parsed = parse_query('1.5:"a red circle" - 0.5:"blue" + 3:x.png')
    assert [(t.kind, t.value, t.weight) for t in parsed.terms] == [
        ("text", "a red circle", 1.5), ("text", "blue", -0.5), ("image", "x.png", 3.0)]


def test_quoted_existing_picture_with_spaces_and_dashes_is_an_image_term(tmp_path):
    photo = tmp_path / "holiday - 2020 + friends.png"
    Image.new("RGB", (8, 8)).save(photo)
    parsed = parse_query(f'"{photo}" - "blue"')
    assert parsed.terms == (QueryTerm("image", str(photo)), QueryTerm("text", "blue", -1.0))
    assert parse_query(str(tmp_path / "missing.png")).terms[0].kind == "text"
    lone = tmp_path / "lone.png"
    Image.new("RGB", (8, 8)).save(lone)
    assert parse_query(str(lone)).terms == (QueryTerm("image", str(lone)),)


def test_request_adds_image_and_more_like_this_terms():
    parsed = request_terms("a red circle", image="x.jpg", like_segment=7)
    assert [t.kind for t in parsed.terms] == ["text", "image", "segment"]
    assert request_terms("", image="x.jpg").positive_texts == []


@pytest.mark.parametrize("bad", ['"red" + + "blue"', '"red" -', '""'])
def test_malformed_queries_raise_a_readable_error(bad):
    with pytest.raises(SearchError):
        parse_query(bad)


def test_empty_or_only_subtracted_queries_are_refused():
    with pytest.raises(SearchError, match="Nothing to search"):
        request_terms("   ")
    with pytest.raises(SearchError, match="added"):
        request_terms('- "blue"')


@pytest.mark.parametrize("query, message", [
    ('-1:"red circle"', "'-1' is not a weight"), ('nan:"red circle"', "'nan' is not a weight"),
    ('"a" + inf:"b"', "'inf' is not a weight"), ('0:"red circle"', "A weight of 0 leaves its term out"),
    ('"red" - 0:"blue"', "A weight of 0"),
])
def test_a_weight_that_is_no_positive_number_is_refused_not_searched_as_text(query, message):
    with pytest.raises(SearchError, match=message):
        request_terms(query)


def test_a_missing_picture_alone_is_searched_as_words_with_a_note(tmp_path):
    from fastslow_desktop.search.query import missing_picture

    parsed = parse_query(str(tmp_path / "holiday.jpg"))
    assert [t.kind for t in parsed.terms] == ["text"]
    assert missing_picture(parsed) == f"There is no picture at {tmp_path / 'holiday.jpg'}: the words were searched " \
                                      "for instead."
    assert missing_picture(parse_query("a red circle")) is None
    assert missing_picture(parse_query("2:30 pm")) is None
