"""Clinical-note texts (``checks.note_text``): load rule, chunks, profile and the nature of a change.

Every fault is built from an expected text the way a trial load would do it, and must come back with
its nature and a message of the right shape that quotes nothing of the note but negation words.
"""

from __future__ import annotations

import random
import re

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks.masking import mojibake
from checks.note_text import CHUNK, NATURES, chunked, classify, classify_frame, normalise, profile, words

NEGATIONS = frozenset("inte ej icke ingen inget inga utan aldrig ua negativ negativt".split())
NOTE = (
    "Besöksorsak: hosta sedan en vecka.\n"
    "Status: Ingen feber. Lungor: ua. Hjärta: regelbunden rytm, inga blåsljud.\n"
    "\n"
    "Bedömning: virusinfektion, inget behov av röntgen.\n"
    "Åtgärd: åter vid försämring."
)
#: Swedish clinical words; none of them is a word of any message
VOCABULARY = (
    "patienten mår bättre idag hosta sedan vecka feber lungor hjärta regelbunden rytm blåsljud buken mjuk "
    "palpationsömhet fraktur patologiskt skelett bedömning virusinfektion behov röntgen åtgärd åter försämring "
    "smärta höger vänster knäled svullnad rodnad trauma remiss ortopedi kontroll veckor blodtryck puls "
    "saturation andning auskultation vesikulärt bilateralt tecken lunginflammation pneumothorax vätska "
    "pleura hjärtskugga normalstor mediastinum slätt diafragma skarpt begränsad fynd tidigare undersökning"
).split()
SENTENCE_NEGATIONS = ["ingen", "inget", "inga", "inte", "utan"]
#: the words of the formatting code the faults below put in (a message may name its tokens)
MARKUP_WORDS = {"rtf1", "par", "br"}


def sentences(rng: random.Random, n_chars: int) -> str:
    """Varied Swedish clinical sentences, about ``n_chars`` long, with negations and line breaks."""
    out: list[str] = []
    size = 0
    while size < n_chars:
        ws = [rng.choice(VOCABULARY) for _ in range(rng.randint(3, 9))]
        if rng.random() < 0.4:
            ws.insert(rng.randrange(len(ws)), rng.choice(SENTENCE_NEGATIONS))
        s = " ".join(ws).capitalize() + rng.choice([".", ".", ":", ";"])
        s += "\n" if rng.random() < 0.2 else " "
        out.append(s)
        size += len(s)
    return normalise_py("".join(out))


def normalise_py(text: str) -> str:
    """The load rule, written out plainly (the reference for ``normalise``)."""
    lines = [line.rstrip(" \t") for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def long_note(n_chars: int, seed: int = 7) -> str:
    """A note of exactly ``n_chars`` characters whose chunks all differ."""
    text = sentences(random.Random(seed), n_chars + 200)[:n_chars]
    assert len(text) == n_chars
    return text


def chunks_of(text: str) -> list[str]:
    return [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]


def nature_of(expected: str, actual: str | None) -> tuple[str, str]:
    change = classify(expected, actual, NEGATIONS)
    assert change.message.startswith("note text differs: ")
    assert "\n" not in change.message and change.message.count(". ") == 0
    return change.nature, change.message


# ------------------------------------------------------------------------------ constants


def test_natures_in_the_order_of_the_spec() -> None:
    assert NATURES == (
        "chunk_missing",
        "chunk_order",
        "truncated",
        "encoding",
        "markup",
        "negation_lost",
        "words_lost",
        "words_added",
        "line_breaks_lost",
        "other",
    )
    assert CHUNK == 4000


# ------------------------------------------------------------------------------ normalise


def norm(values: list[str | None]) -> list[str | None]:
    return pl.DataFrame({"t": values}, schema={"t": pl.String}).select(normalise(pl.col("t")))["t"].to_list()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ingen fraktur.\r\nInget patologiskt.", "Ingen fraktur.\nInget patologiskt."),
        ("Ingen fraktur.\rInget patologiskt.\r", "Ingen fraktur.\nInget patologiskt."),
        ("Lungor: ua. \t \nHjärta: ua.\t", "Lungor: ua.\nHjärta: ua."),
        ("  \t\r\n\n \nStatus: ua.\n \t\n\n", "Status: ua."),
        ("Status:\n\n\nBedömning: ua.", "Status:\n\n\nBedömning: ua."),
        ("\n   Ingen fraktur.\n  Inget patologiskt.", "   Ingen fraktur.\n  Inget patologiskt."),
        ("Ingen  fraktur,\tinget\u00a0patologiskt", "Ingen  fraktur,\tinget\u00a0patologiskt"),
        ("Lungor: ua.\u00a0", "Lungor: ua.\u00a0"),
        (" \t \r\n\r\n", ""),
        ("", ""),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert norm([raw]) == [expected]
    assert normalise_py(raw) == expected


def test_normalise_keeps_null() -> None:
    assert norm([None, "Ingen fraktur. \r\n"]) == [None, "Ingen fraktur."]


@given(st.lists(st.text(alphabet=" \t\r\nab åö.", max_size=30), max_size=20))
def test_normalise_is_the_load_rule(texts: list[str]) -> None:
    assert norm(list(texts)) == [normalise_py(t) for t in texts]


# ------------------------------------------------------------------------------ chunks


@pytest.mark.parametrize("length", [0, 1, 3999, 4000, 4001, 8000, 12001])
@pytest.mark.parametrize("lazy", [False, True])
def test_chunks_join_to_the_text(length: int, lazy: bool) -> None:
    text = ("Ingen fraktur åt höger. Inget patologiskt i skelettet, ö och å.\n" * 200)[:length]
    df = pl.DataFrame({"ce_id": [10, 11, 12], "text": [text, "Lungor: ua.", None]})
    out = chunked(df.lazy() if lazy else df, "ce_id", "text")
    assert isinstance(out, pl.LazyFrame if lazy else pl.DataFrame)
    got = out.collect() if isinstance(out, pl.LazyFrame) else out
    assert got.columns == ["ce_id", "blob_seq_num", "blob_contents"]
    assert got.schema["blob_seq_num"] == pl.Int32
    mine = got.filter(pl.col("ce_id") == 10)
    n = -(-length // CHUNK)
    assert mine["blob_seq_num"].to_list() == list(range(1, n + 1))
    assert "".join(mine["blob_contents"].to_list()) == text
    lengths = [len(c) for c in mine["blob_contents"].to_list()]
    assert all(c == CHUNK for c in lengths[:-1]) and all(0 < c <= CHUNK for c in lengths)
    other = got.filter(pl.col("ce_id") == 11)
    assert other.rows() == [(11, 1, "Lungor: ua.")]
    assert got.filter(pl.col("ce_id") == 12).height == 0


def test_chunks_count_code_points() -> None:
    text = "å" * 4001 + "ö" * 3999
    got = chunked(pl.DataFrame({"id": [1], "t": [text]}), "id", "t")
    assert [len(c) for c in got["blob_contents"]] == [4000, 4000]
    assert "".join(got["blob_contents"]) == text


# ------------------------------------------------------------------------------ words and profile


def test_words() -> None:
    assert words("Ingen fraktur. Inget patologiskt. Lungor: ua.") == [
        "ingen",
        "fraktur",
        "inget",
        "patologiskt",
        "lungor",
        "ua",
    ]
    assert words("Hb 134 g/l, CRP<5; snake_case ÅÄÖ-test") == ["hb", "134", "g", "l", "crp", "5", "snake", "case"] + [
        "åäö",
        "test",
    ]
    assert words("") == []


def test_profile() -> None:
    assert profile(None) == "no text"
    assert profile("") == "empty text"
    assert profile("ua") == "2 characters, 1 word, 1 line"
    assert profile(NOTE) == f"{len(NOTE)} characters, 25 words, 5 lines"
    assert profile("ej " * 2000) == "6,000 characters, 2,000 words, 1 line"


# ------------------------------------------------------------------------------ one test per nature


def test_chunk_missing_one_of_three() -> None:
    text = long_note(12001)
    c = chunks_of(text)
    nature, message = nature_of(text, c[0] + c[2] + c[3])
    negs = sum(1 for w in words(c[1]) if w in NEGATIONS)
    assert nature == "chunk_missing"
    assert negs > 1
    assert re.fullmatch(
        r"note text differs: chunk 2 of 4 missing \(4,000 characters, \d+ negation words among them\)", message
    )
    found = int(re.search(r"(\d+) negation words", message).group(1))  # type: ignore[union-attr]
    assert negs - 1 <= found <= negs + 1  # a word cut at a chunk border counts with the chunk it starts or ends in


def test_chunk_missing_several_and_all() -> None:
    text = long_note(12001)
    c = chunks_of(text)
    assert re.fullmatch(
        r"note text differs: chunks 2 and 4 of 4 missing \(4,001 characters, \d+ negation words among them\)",
        nature_of(text, c[0] + c[2])[1],
    )
    for actual in (None, ""):
        nature, message = nature_of(text, actual)
        assert nature == "chunk_missing"
        assert re.fullmatch(
            r"note text differs: all 4 chunks missing \(12,001 characters, \d+ negation words among them\)", message
        )
    nature, message = nature_of(NOTE, None)
    assert (nature, message) == (
        "chunk_missing",
        f"note text differs: chunk 1 of 1 missing ({len(NOTE)} characters, 4 negation words among them)",
    )


def test_chunk_cut_at_a_border_is_chunk_missing_not_truncated() -> None:
    text = long_note(8500)
    nature, message = nature_of(text, text[:8000])
    assert nature == "chunk_missing"
    assert message.startswith("note text differs: chunk 3 of 3 missing (500 characters")
    assert nature_of(text, text[:4000])[1].startswith(
        "note text differs: chunks 2 and 3 of 3 missing (4,500 characters"
    )
    assert nature_of(text, text[:7999])[0] == "truncated"
    assert (
        nature_of("Lungor: ua.", "Lungor: ua")[1]
        == "note text differs: cut short after 10 of 11 characters (no word lost)"
    )
    assert nature_of(NOTE, NOTE[:-3])[1].endswith("(at word 25 of 25; no negation words among the lost)")


def test_chunk_order() -> None:
    text = long_note(12001)
    c = chunks_of(text)
    nature, message = nature_of(text, c[1] + c[0] + c[2] + c[3])
    assert (nature, message) == (
        "chunk_order",
        "note text differs: chunks in the wrong order (4 chunks arrived as 2, 1, 3, 4)",
    )
    assert nature_of(text, c[3] + c[0] + c[1] + c[2])[1].endswith("(4 chunks arrived as 4, 1, 2, 3)")


def test_chunk_missing_wins_over_order() -> None:
    text = long_note(12000)
    c = chunks_of(text)
    nature, message = nature_of(text, c[2] + c[0])
    assert nature == "chunk_missing"
    assert message.startswith("note text differs: chunk 2 of 3 missing (4,000 characters")


def test_truncated() -> None:
    text = sentences(random.Random(3), 5000)
    cut = 2345
    nature, message = nature_of(text, text[:cut])
    assert nature == "truncated"
    m = re.fullmatch(
        r"note text differs: cut short after 2,345 of ([\d,]+) characters \(at word ([\d,]+) of ([\d,]+); "
        r"(\d+|no) negation words? among the lost\)",
        message,
    )
    assert m, message
    assert int(m.group(1).replace(",", "")) == len(text)
    kept = words(text[:cut])
    complete = kept if text[cut].isspace() or not text[cut].isalnum() else kept[:-1]
    assert int(m.group(2)) == len(complete) + 1
    assert int(m.group(3).replace(",", "")) == len(words(text))
    lost_negs = sum(1 for w in words(text)[len(complete) :] if w in NEGATIONS)
    assert m.group(4) == (str(lost_negs) if lost_negs else "no")


def test_truncated_with_a_trailing_space() -> None:
    cut = NOTE.index("Lungor")
    nature, message = nature_of(NOTE, NOTE[:cut] + " ")
    assert nature == "truncated"
    assert message.startswith(
        f"note text differs: cut short after {cut - 1} of {len(NOTE)} characters (at word 9 of 25;"
    )
    assert message.endswith("; 3 negation words among the lost)")


def test_encoding() -> None:
    nature, message = nature_of(NOTE, mojibake(NOTE))
    garbled = sum(1 for ch in NOTE if ord(ch) > 127)
    assert nature == "encoding"
    assert message == f"note text differs: UTF-8 text read as Windows-1252 (Ã¶ for ö), {garbled} characters affected"
    one = NOTE.replace("åter", mojibake("åter"))
    assert nature_of(NOTE, one) == (
        "encoding",
        "note text differs: UTF-8 text read as Windows-1252 (Ã¥ for å), 1 character affected",
    )
    dash = "Hosta – ingen feber."
    assert (
        nature_of(dash, mojibake(dash))[1]
        == "note text differs: UTF-8 text read as Windows-1252 (â€“ for –), 1 character affected"
    )


def test_encoding_twice_and_unrepairable() -> None:
    assert nature_of(NOTE, mojibake(mojibake(NOTE))) == nature_of(NOTE, mojibake(NOTE))
    quoted = "Patienten säger ”ingen smärta” idag."  # ” is E2 80 9D: 9D is no Windows-1252 character
    nature, message = nature_of(quoted, mojibake(quoted))
    assert nature == "encoding"
    assert message == "note text differs: UTF-8 text read as Windows-1252 (Ã¤ for ä), 4 characters affected"


def test_encoding_and_truncation() -> None:
    garbled = mojibake(NOTE)
    assert nature_of(NOTE, garbled[:60])[0] == "encoding"  # not a prefix of the expected text
    assert nature_of(NOTE, NOTE[:60])[0] == "truncated"


def test_markup_rtf() -> None:
    rtf = "{\\rtf1\\ansi\\deff0 " + NOTE.replace("\n", "\\par\n").replace("Ingen", "\\b Ingen\\b0 ") + "}"
    nature, message = nature_of(NOTE, rtf)
    assert nature == "markup"
    assert (
        message
        == "note text differs: formatting code arrived as text (RTF: \\par ×4, {\\rtf1 ×1, \\ansi ×1 and 3 more)"
    )


def test_markup_html() -> None:
    html = "<p>" + NOTE.replace("\n", "<br>").replace("Ingen feber", "<b>Ingen</b>&nbsp;feber") + "</p>"
    nature, message = nature_of(NOTE, html)
    assert nature == "markup"
    assert message == "note text differs: formatting code arrived as text (HTML: <br> ×4, <p> ×1, <b> ×1 and 3 more)"
    assert nature_of(NOTE, NOTE.replace("\n", "<br/>"))[1].endswith("(HTML: <br/> ×4)")


def test_line_breaks_replaced_by_br_is_markup_not_line_breaks_lost() -> None:
    assert nature_of(NOTE, NOTE.replace("\n", "<br>"))[0] == "markup"


def test_tags_not_of_html_are_no_markup() -> None:
    text = "Bedömning: <Anna Andersson> ringer"
    assert nature_of("Bedömning: ringer", text)[0] == "words_added"


def test_negation_lost() -> None:
    nature, message = nature_of(NOTE, NOTE.replace("Ingen feber", "feber"))
    assert (nature, message) == ("negation_lost", "note text differs: negation lost — 'ingen' missing (word 7 of 25)")


def test_negation_lost_wins_over_other_words_lost() -> None:
    actual = NOTE.replace("inget behov", "behov").replace("hosta ", "")
    nature, message = nature_of(actual=actual, expected=NOTE)
    assert (nature, message) == ("negation_lost", "note text differs: negation lost — 'inget' missing (word 18 of 25)")


def test_negation_lost_several() -> None:
    actual = NOTE.replace("Ingen ", "").replace("inga ", "").replace("inget ", "").replace(": ua", ":")
    nature, message = nature_of(NOTE, actual)
    assert nature == "negation_lost"
    assert message == (
        "note text differs: negation lost — 'ingen' missing (word 7 of 25), 'ua' missing (word 10 of 25), "
        "'inga' missing (word 14 of 25) and 1 more"
    )
    twice = "Ingen fraktur. Ingen luxation. Inget patologiskt."
    assert nature_of(twice, "fraktur. luxation. Inget patologiskt.")[1] == (
        "note text differs: negation lost — 'ingen' missing twice (words 1, 3 of 6)"
    )


def test_negation_case_insensitive_whole_words() -> None:
    # "ingenting" is no negation word of the list: its loss is a word lost
    assert nature_of("Ingenting att anmärka.", "att anmärka.")[0] == "words_lost"
    assert (
        nature_of("INGEN fraktur.", "fraktur.")[1] == "note text differs: negation lost — 'ingen' missing (word 1 of 2)"
    )


def test_words_lost() -> None:
    nature, message = nature_of(NOTE, NOTE.replace("hosta ", "").replace(" rytm", ""))
    assert (nature, message) == ("words_lost", "note text differs: 2 words missing (words 2, 13 of 25)")
    assert nature_of(NOTE, NOTE.replace("virusinfektion", "virusinfekton"))[1] == (
        "note text differs: 1 word missing (word 17 of 25)"
    )


def test_words_added() -> None:
    actual = NOTE.replace("hosta", "torr hosta").replace("feber.", "feber idag.") + " Kontroll om tre veckor."
    nature, message = nature_of(NOTE, actual)
    assert (nature, message) == ("words_added", "note text differs: 6 words added (after words 1, 8, 25 of 25)")
    assert nature_of(NOTE, "Obs! " + NOTE)[1] == "note text differs: 1 word added (at the start)"


def test_line_breaks_lost() -> None:
    nature, message = nature_of(NOTE, NOTE.replace("\n", " "))
    assert (nature, message) == ("line_breaks_lost", "note text differs: line breaks lost (5 lines arrived as 1)")
    moved = "Lungor: ua.\nHjärta: regelbunden rytm."
    assert nature_of(moved, "Lungor: ua. Hjärta:\nregelbunden rytm.")[1] == (
        "note text differs: line breaks moved (2 lines, broken at other places)"
    )
    more = NOTE.replace(". ", ".\n")
    assert nature_of(NOTE, more) == (
        "line_breaks_lost",
        "note text differs: line breaks changed (5 lines arrived as 7)",
    )


def test_other() -> None:
    assert nature_of(NOTE, NOTE.replace("Status", "STATUS")) == (
        "other",
        "note text differs: the words are the same but upper and lower case differ",
    )
    assert nature_of(NOTE, NOTE.replace(": ", ":  ")) == (
        "other",
        "note text differs: the words are the same but spaces differ",
    )
    assert nature_of(NOTE, NOTE.replace(".", ";"))[1] == (
        "note text differs: the words are the same but other characters differ (punctuation or symbols)"
    )
    assert nature_of(NOTE, NOTE.replace("\n", "\r\n"))[0] == "other"
    assert nature_of(NOTE, NOTE.replace("feber. Lungor", "Lungor feber.")) == (
        "other",
        "note text differs: the same words arrived in another order",
    )
    assert classify(NOTE, NOTE, NEGATIONS).nature == "other"


# ------------------------------------------------------------------------------ frame


def test_classify_frame() -> None:
    df = pl.DataFrame(
        {
            "clinical_event_id": [1, 2, 3],
            "expected_text": [NOTE, NOTE, NOTE],
            "actual_text": [NOTE.replace("Ingen ", ""), None, NOTE.replace("\n", " ")],
        }
    )
    out = classify_frame(df, "expected_text", "actual_text", NEGATIONS)
    assert out.columns == df.columns + ["nature", "message", "expected_profile", "actual_profile"]
    assert out["nature"].to_list() == ["negation_lost", "chunk_missing", "line_breaks_lost"]
    assert out["actual_profile"][1] == "no text"
    assert out["expected_profile"][0] == profile(NOTE)
    empty = classify_frame(df.clear(), "expected_text", "actual_text", NEGATIONS)
    assert empty.height == 0 and empty.schema["nature"] == pl.String


# ------------------------------------------------------------------------------ privacy and speed


def faults(rng: random.Random, text: str) -> list[str]:
    ws = text.split(" ")
    i = rng.randrange(1, len(ws) - 1)
    return [
        " ".join(ws[:i] + ws[i + 1 :]),
        " ".join(ws[:i] + [rng.choice(VOCABULARY)] + ws[i:]),
        text[: rng.randrange(1, len(text))],
        mojibake(text),
        text.replace("\n", "<br>"),
        "{\\rtf1 " + text.replace("\n", "\\par ") + "}",
        text.replace("\n", " "),
        " ".join(w for w in ws if w.rstrip(".:;").casefold() not in NEGATIONS),
        " ".join(reversed(ws)),
        text.upper(),
    ]


def test_no_note_content_in_any_output() -> None:
    rng = random.Random(2024)
    for _ in range(60):
        text = sentences(rng, rng.choice([80, 400, 2000, 9000]))
        for actual in faults(rng, text):
            if actual == text:
                continue
            change = classify(text, actual, NEGATIONS)
            assert change.nature in NATURES
            shown = words(" ".join([change.message, change.expected, change.actual]))
            grams = {tuple(shown[i : i + 4]) for i in range(len(shown) - 3)}
            for source in (words(text), words(actual)):
                for i in range(len(source) - 3):
                    assert tuple(source[i : i + 4]) not in grams, change
            leaked = {w for w in words(change.message) if len(w) >= 4 and w not in NEGATIONS}
            content = (set(words(text)) | set(words(actual))) - MARKUP_WORDS
            assert not leaked & content, change
