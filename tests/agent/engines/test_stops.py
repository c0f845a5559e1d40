"""Stop sequences over streamed text, for every way the text can arrive in pieces."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.engines.stops import StopScanner

# A small alphabet makes stops actually occur, overlap and nest inside each other.
ALPHABET = "ab\né"
texts = st.text(ALPHABET, max_size=40)
stop_sets = st.lists(st.text(ALPHABET, max_size=4), max_size=4)


@st.composite
def chunked(draw: st.DrawFn) -> list[str]:
    """A text cut into arbitrary consecutive pieces, empty pieces included."""
    text = draw(texts)
    return split_at(text, draw(st.lists(st.integers(0, len(text)), max_size=12)))


def split_at(text: str, cuts: list[int]) -> list[str]:
    return [text[start:end] for start, end in pairwise([0, *sorted(cuts), len(text)])]


def expected_output(text: str, stops: list[str]) -> tuple[str, bool]:
    """The text before the stop that is completed first as the text streams in.

    When two stops complete at the same character, the one that started earlier wins.
    """
    occurrences = [
        (text.find(stop) + len(stop), text.find(stop)) for stop in stops if stop and stop in text
    ]
    if not occurrences:
        return text, False
    _, start = min(occurrences)
    return text[:start], True


def stream(pieces: list[str], stops: list[str]) -> tuple[list[str], bool]:
    """Feed pieces until a stop is hit, as the engine does; flush only when none was."""
    scanner = StopScanner(stops)
    emitted: list[str] = []
    fed = ""
    longest_stop = max((len(s) for s in stops), default=0)
    for piece in pieces:
        fed += piece
        text, hit = scanner.feed(piece)
        emitted.append(text)
        so_far = "".join(emitted)
        assert fed.startswith(so_far)
        assert not any(stop and stop in so_far for stop in stops)
        if hit:
            return emitted, True
        # Only text that may still start a stop is held back.
        assert len(fed) - len(so_far) < max(longest_stop, 1)
    emitted.append(scanner.flush())
    return emitted, False


@settings(deadline=None)
@given(chunked(), stop_sets)
@example(["a", "b", "c"], ["b", "abc"])  # a stop nested inside a longer one
@example(["abc"], ["b", "abc"])
@example(["xa", "b"], ["ab", "xab"])
@example(["a\n", "\n"], ["\n\n"])
def test_emitted_text_is_the_text_before_the_first_completed_stop(
    pieces: list[str], stops: list[str]
) -> None:
    emitted, hit = stream(pieces, stops)
    text = "".join(pieces)
    assert ("".join(emitted), hit) == expected_output(text, stops)


@settings(deadline=None)
@given(texts, stop_sets, st.data())
def test_output_does_not_depend_on_how_the_text_is_split(
    text: str, stops: list[str], data: st.DataObject
) -> None:
    pieces = split_at(text, data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    one_by_one = "".join(stream(list(text), stops)[0])
    assert "".join(stream(pieces, stops)[0]) == one_by_one == "".join(stream([text], stops)[0])


def test_a_stop_nested_in_a_longer_one_cuts_the_same_in_one_piece_or_many() -> None:
    assert stream(["abc"], ["b", "abc"]) == (["a"], True)
    assert "".join(stream(["a", "b", "c"], ["b", "abc"])[0]) == "a"


def test_a_held_prefix_is_released_when_the_stop_does_not_follow() -> None:
    scanner = StopScanner(["\n\n"])
    assert scanner.feed("Hello\n") == ("Hello", False)
    assert scanner.feed("world") == ("\nworld", False)
    assert scanner.flush() == ""


def test_text_before_a_stop_split_across_pieces_is_kept() -> None:
    scanner = StopScanner(["END"])
    assert scanner.feed("done E") == ("done ", False)
    assert scanner.feed("N") == ("", False)
    assert scanner.feed("D and more") == ("", True)


def test_empty_stops_are_ignored() -> None:
    scanner = StopScanner(["", ""])
    assert scanner.feed("anything") == ("anything", False)
    assert scanner.flush() == ""
