r"""Clinical-note texts: the load rule's normal form, the 4000-character chunks, a profile and the nature of a change.

``clinical-notes.md``: a note's expected text is its legacy text with line ends made ``\n``, the spaces
and tabs at the end of every line and the blank lines at both ends removed; the target holds it cut
into ``ce_blob`` chunks of ``CHUNK`` code points. A target text that differs is one ``text_altered``
finding whose ``nature`` is the first of ``NATURES`` that applies.

No output of this module holds any part of a note: messages give numbers (characters, words, word
positions, lines, chunks), the negation words of the list, formatting-code tokens and a generic
garbled-letter example from a fixed table (``Ã¶ for ö``); ``expected`` and ``actual`` are profiles.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import polars as pl
from rapidfuzz.distance import Indel

from checks.masking import mojibake

#: the ``nature`` words of a ``text_altered`` finding, in the order the first that applies is taken
NATURES: tuple[str, ...] = (
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
#: code points per ``ce_blob`` chunk
CHUNK = 4000

_PREFIX = "note text differs: "
#: positions listed at most in a message (word numbers, negation words, markup tokens)
_SHOWN = 5
_SHOWN_NEGATIONS = 3
_SHOWN_TOKENS = 3
_SHOWN_CHUNKS = 12

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


# ------------------------------------------------------------------------------ load rule, chunks


def normalise(e: pl.Expr) -> pl.Expr:
    r"""The expected text of a note (vectorised): the load rule of ``clinical-notes.md``.

    ``\r\n`` and ``\r`` become ``\n``; spaces and tabs at the end of every line are removed; blank
    lines at the start and end are removed. Nothing else changes: leading spaces of the first line
    with text and blank lines inside the text stay. Null stays null; an all-blank text gives ``""``.
    """
    return (
        e.str.replace_all("\r\n", "\n", literal=True)
        .str.replace_all("\r", "\n", literal=True)
        .str.replace_all(r"(?m)[ \t]+$", "")
        .str.strip_chars("\n")
    )


def chunked(df: FrameT, id_col: str, text_col: str) -> FrameT:
    """The ``ce_blob`` rows of each text: ``id_col``, ``blob_seq_num`` (Int32, from 1), ``blob_contents``.

    Every chunk is ``CHUNK`` code points long but the last, which may be shorter; joining the chunks
    in ``blob_seq_num`` order gives the text exactly. An empty or null text gives no chunk.
    """
    k = "__chunk_index"
    n = ((pl.col(text_col).str.len_chars().cast(pl.Int64) + (CHUNK - 1)) // CHUNK).alias("__n")
    return (
        df.select(pl.col(id_col), pl.col(text_col), pl.int_ranges(0, n, dtype=pl.Int64).alias(k))
        .explode(k, empty_as_null=False, keep_nulls=False)
        .select(
            pl.col(id_col),
            (pl.col(k) + 1).cast(pl.Int32).alias("blob_seq_num"),
            pl.col(text_col).str.slice(pl.col(k) * CHUNK, CHUNK).alias("blob_contents"),
        )
    )


def _chunks(text: str) -> list[str]:
    return [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]


# ------------------------------------------------------------------------------ words and profile

_WORD = re.compile(r"[^\W_]+")
#: a word or a line break, for the line pattern of a text
_WORD_OR_BREAK = re.compile(r"[^\W_]+|\n")


def words(text: str) -> list[str]:
    """The words of a text: maximal runs of letters and digits, case-folded for comparison."""
    folded = text.casefold()
    if len(folded) == len(text):  # folding changed no letter into several (``İ``): fold once, then find
        return _WORD.findall(folded)
    return [w.casefold() for w in _WORD.findall(text)]


def _spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, case-folded word) of every word of ``text``, in order."""
    return [(m.start(), m.end(), m.group().casefold()) for m in _WORD.finditer(text)]


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _lines(text: str) -> int:
    return text.count("\n") + 1


def profile(text: str | None, word_count: int | None = None) -> str:
    """A text as it may be shown: ``"412 characters, 61 words, 7 lines"`` (``"no text"`` for None).

    ``word_count``: the number of ``words`` of ``text`` when the caller has them already.
    """
    if text is None:
        return "no text"
    if not text:
        return "empty text"
    n_words = len(_WORD.findall(text)) if word_count is None else word_count
    return f"{_n(len(text), 'character')}, {_n(n_words, 'word')}, {_n(_lines(text), 'line')}"


def _numbers(values: list[int], limit: int = _SHOWN) -> str:
    shown = ", ".join(f"{v:,}" for v in values[:limit])
    return shown + (", …" if len(values) > limit else "")


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _negation_count(count: int, where: str) -> str:
    if count == 0:
        return f"no negation words {where}"
    return f"{_n(count, 'negation word')} {where}"


# ------------------------------------------------------------------------------ chunks


def _chunk_parse(chunks: list[str], actual: str) -> list[int] | None:
    """The chunk numbers (0-based) whose concatenation is ``actual``, each chunk at most once; else None.

    Every chunk but the last is ``CHUNK`` long, so the last one (when shorter) is in ``actual`` exactly
    when the length says so; only its place has to be tried. Identical chunks are interchangeable:
    the lowest unused number is taken.
    """
    if not chunks:
        return [] if not actual else None
    short = len(chunks[-1]) if len(chunks[-1]) < CHUNK else 0
    full: dict[str, list[int]] = {}
    for i, c in enumerate(chunks if not short else chunks[:-1]):
        full.setdefault(c, []).append(i)
    rest = len(actual) % CHUNK
    if rest == 0:
        places: Iterable[int | None] = [None]
    elif rest == short:
        places = range(0, len(actual) - short + 1, CHUNK)
    else:
        return None
    for place in places:
        free = {c: list(ix) for c, ix in full.items()}
        order: list[int] = []
        p = 0
        while p < len(actual):
            if p == place:
                if not actual.startswith(chunks[-1], p):
                    break
                order.append(len(chunks) - 1)
                p += short
                continue
            ix = free.get(actual[p : p + CHUNK])
            if not ix:
                break
            order.append(ix.pop(0))
            p += CHUNK
        else:
            return order
    return None


def _chunk_missing(expected: str, chunks: list[str], kept: list[int], negations: frozenset[str]) -> str:
    missing = sorted(set(range(len(chunks))) - set(kept))
    ranges = [(i * CHUNK, i * CHUNK + len(chunks[i])) for i in missing]
    chars = sum(end - start for start, end in ranges)
    negs = sum(
        1 for s, e, w in _spans(expected) if w in negations and any(s < end and e > start for start, end in ranges)
    )
    n = len(chunks)
    if len(missing) == n and n > 1:
        what = f"all {n} chunks missing"
    elif len(missing) == 1:
        what = f"chunk {missing[0] + 1} of {n} missing"
    else:
        what = f"chunks {_and([str(i + 1) for i in missing])} of {n} missing"
    return f"{_PREFIX}{what} ({_n(chars, 'character')}, {_negation_count(negs, 'among them')})"


# ------------------------------------------------------------------------------ truncation


def _truncated_at(expected: str, actual: str) -> int | None:
    """The length of ``expected`` that arrived when ``actual`` is it cut short (a trailing space allowed)."""
    if len(actual) < len(expected) and expected.startswith(actual):
        return len(actual)
    kept = actual.rstrip()
    if len(kept) < len(expected) and expected.startswith(kept):
        return len(kept)
    return None


def _truncated(expected: str, cut: int, negations: frozenset[str]) -> str:
    spans = _spans(expected)
    first_lost = next((i for i, (_, end, _) in enumerate(spans) if end > cut), None)
    head = f"{_PREFIX}cut short after {cut:,} of {len(expected):,} characters"
    if first_lost is None:
        return f"{head} (no word lost)"
    negs = sum(1 for _, _, w in spans[first_lost:] if w in negations)
    return f"{head} (at word {first_lost + 1:,} of {len(spans):,}; {_negation_count(negs, 'among the lost')})"


# ------------------------------------------------------------------------------ encoding


def _cp1252_char(b: int) -> str:
    try:
        return bytes([b]).decode("cp1252")
    except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined, as lenient readers give them
        return chr(b)


_BYTE_OF = {_cp1252_char(b): b for b in range(0x80, 0x100)}


def _char_class(lo: int, hi: int, extra: str = "") -> str:
    return "[" + "".join(re.escape(_cp1252_char(b)) for b in range(lo, hi + 1)) + extra + "]"


_CONT = _char_class(0x80, 0xBF, "\ufffd")  # U+FFFD: an undefined byte replaced when read
#: one UTF-8 character read as Windows-1252: a lead byte and its continuation bytes
_MOJIBAKE = re.compile(
    f"{_char_class(0xC2, 0xDF)}{_CONT}|{_char_class(0xE0, 0xEF)}{_CONT}{{2}}|{_char_class(0xF0, 0xF4)}{_CONT}{{3}}"
)
#: the garbled-letter examples a message may show, by the letter affected (``Ã¶ for ö``)
_GARBLED = {ch: f"{mojibake(ch)} for {ch}" for ch in "öåäÖÅÄéÉèüÜàáóøæØÆ–—’‘“…°µ±×€§½" if "\ufffd" not in mojibake(ch)}
_GENERIC_GARBLED = "e.g. Ã¶ for ö"


def _repair_one(seq: str) -> str | None:
    """The character ``seq`` (one ``_MOJIBAKE`` match) was before UTF-8 was read as Windows-1252, if known."""
    if "\ufffd" in seq:
        return None
    try:
        return bytes(_BYTE_OF[c] for c in seq).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _garbled(text: str) -> Counter[str]:
    """The mojibake sequences of ``text``: valid UTF-8 characters read as Windows-1252."""
    return Counter(
        m.group() for m in _MOJIBAKE.finditer(text) if "\ufffd" in m.group() or _repair_one(m.group()) is not None
    )


def _repair(text: str) -> tuple[str, Counter[str], int]:
    """``text`` with its mojibake repaired (twice-garbled text too), the letters restored, and those not restorable."""
    restored: Counter[str] = Counter()
    state = {"found": 0, "unknown": 0}

    def fix(m: re.Match[str]) -> str:
        seq = m.group()
        ch = _repair_one(seq)
        if ch is None:
            state["unknown"] += "\ufffd" in seq
            return seq
        state["found"] += 1
        restored[ch] += 1
        restored.subtract(seq)  # an intermediate (twice-garbled) letter is not one of the note's
        return ch

    text = _MOJIBAKE.sub(fix, text)
    unknown = state["unknown"]
    for _ in range(2):
        if not state["found"]:
            break
        state["found"] = 0
        text = _MOJIBAKE.sub(fix, text)
    return text, +restored, unknown


def _encoding(expected: str, actual: str) -> str | None:
    extra = _garbled(actual) - _garbled(expected)
    repaired, restored, unknown = _repair(actual)
    if not extra and (repaired == actual or repaired != expected):
        return None
    affected = sum(restored.values()) + unknown
    shown = next((_GARBLED[ch] for ch, _ in restored.most_common() if ch in _GARBLED), _GENERIC_GARBLED)
    return f"{_PREFIX}UTF-8 text read as Windows-1252 ({shown}), {_n(affected, 'character')} affected"


# ------------------------------------------------------------------------------ markup

_RTF_WORDS = frozenset(
    "rtf ansi ansicpg deff deflang fonttbl colortbl stylesheet info generator viewkind uc pard par plain "
    "b i ul ulnone strike super sub nosupersub fs f cf cb highlight lang tab line page sect sectd "
    "ql qr qc qj li ri fi sa sb sl slmult tx cell row trowd intbl cellx clbrdrt clbrdrb brdrs pntext pn "
    "listtext bullet emdash endash lquote rquote ldblquote rdblquote fnil fswiss froman fcharset red green blue".split()
)
_RTF = re.compile(r"\{\\rtf\d*|\\([a-z]{1,32})(-?\d{1,10})?|\\'[0-9a-fA-F]{2}")
_HTML_TAGS = frozenset(
    "a b big blockquote body br center code div em font h1 h2 h3 h4 h5 h6 head hr html i img li ol p pre "
    "s small span strike strong sub sup table tbody td th thead tr u ul".split()
)
_HTML_TAG = re.compile(r"<\s*(/?)\s*([a-zA-Z][a-zA-Z0-9]{0,15})\b[^<>]{0,500}?(/?)\s*>")
_HTML_ENTITIES = frozenset(
    "nbsp amp lt gt quot apos auml ouml aring Auml Ouml Aring eacute Eacute uuml Uuml ndash mdash hellip "
    "deg micro plusmn middot times euro sect lsquo rsquo ldquo rdquo bull shy".split()
)
_HTML_ENTITY = re.compile(r"&(#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});")


def _rtf_tokens(text: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for m in _RTF.finditer(text):
        s = m.group()
        if s.startswith("{"):
            found["{\\rtf1"] += 1
        elif s.startswith("\\'"):
            found["\\'xx"] += 1
        elif m.group(1) in _RTF_WORDS:
            found[s] += 1
    return found


def _html_tokens(text: str) -> Counter[str]:
    found: Counter[str] = Counter()
    if "<" in text:
        for m in _HTML_TAG.finditer(text):
            name = m.group(2).lower()
            if name in _HTML_TAGS:
                found[f"<{m.group(1)}{name}{m.group(3)}>"] += 1
    if "&" in text:
        for m in _HTML_ENTITY.finditer(text):
            ref = m.group(1)
            if ref.startswith("#") or ref in _HTML_ENTITIES:
                found[m.group()] += 1
    return found


def _tokens_shown(kind: str, tokens: Counter[str]) -> str:
    top = tokens.most_common()
    shown = ", ".join(f"{t} ×{c:,}" for t, c in top[:_SHOWN_TOKENS])
    more = f" and {len(top) - _SHOWN_TOKENS} more" if len(top) > _SHOWN_TOKENS else ""
    return f"{kind}: {shown}{more}"


def _markup(expected: str, actual: str) -> str | None:
    parts = []
    for kind, tokens in (("RTF", _rtf_tokens), ("HTML", _html_tokens)):
        extra = tokens(actual) - tokens(expected)
        if extra:
            parts.append(_tokens_shown(kind, extra))
    if not parts:
        return None
    return f"{_PREFIX}formatting code arrived as text ({'; '.join(parts)})"


# ------------------------------------------------------------------------------ words


def _lost_positions(ew: list[str], aw: list[str], lost: Counter[str]) -> dict[str, list[int]]:
    """For each word of ``lost`` (net count), the 0-based positions in ``ew`` of its lost occurrences."""
    found: dict[str, list[int]] = {w: [] for w in lost}
    for op in Indel.opcodes(ew, aw):
        if op.tag in ("delete", "replace"):
            for i in range(op.src_start, op.src_end):
                got = found.get(ew[i])
                if got is not None and len(got) < lost[ew[i]]:
                    got.append(i)
    return found


def _added_after(ew: list[str], aw: list[str], added: Counter[str]) -> list[int]:
    """The number of expected words before each added word (0: at the start), in order."""
    left = Counter(added)
    after: list[int] = []
    for op in Indel.opcodes(ew, aw):
        if op.tag in ("insert", "replace"):
            for j in range(op.dest_start, op.dest_end):
                if left[aw[j]] > 0:
                    left[aw[j]] -= 1
                    after.append(op.src_start)
    return after


def _negation_lost(ew: list[str], aw: list[str], lost: Counter[str]) -> str:
    where = _lost_positions(ew, aw, lost)
    entries = sorted(((pos, w) for w, pos in where.items() if pos), key=lambda e: e[0][0])
    total = f"{len(ew):,}"
    parts = []
    for pos, w in entries[:_SHOWN_NEGATIONS]:
        if len(pos) == 1:
            parts.append(f"'{w}' missing (word {pos[0] + 1:,} of {total})")
        else:
            times = "twice" if len(pos) == 2 else f"{len(pos)} times"
            parts.append(f"'{w}' missing {times} (words {_numbers([p + 1 for p in pos])} of {total})")
    more = f" and {len(entries) - _SHOWN_NEGATIONS} more" if len(entries) > _SHOWN_NEGATIONS else ""
    return f"{_PREFIX}negation lost — {', '.join(parts)}{more}"


def _words_lost(ew: list[str], aw: list[str], lost: Counter[str]) -> str:
    positions = sorted(p + 1 for pos in _lost_positions(ew, aw, lost).values() for p in pos)
    count = sum(lost.values())
    label = "word" if len(positions) == 1 else "words"
    return f"{_PREFIX}{_n(count, 'word')} missing ({label} {_numbers(positions)} of {len(ew):,})"


def _words_added(ew: list[str], aw: list[str], added: Counter[str]) -> str:
    after = sorted(set(_added_after(ew, aw, added)))
    count = sum(added.values())
    places = []
    if after and after[0] == 0:
        places.append("at the start")
        after = after[1:]
    if after:
        label = "word" if len(after) == 1 else "words"
        places.append(f"after {label} {_numbers(after)} of {len(ew):,}")
    return f"{_PREFIX}{_n(count, 'word')} added ({' and '.join(places)})"


# ------------------------------------------------------------------------------ lines and the rest


def _line_pattern(text: str) -> list[int]:
    """The number of words before each line break."""
    pattern = []
    n = 0
    for t in _WORD_OR_BREAK.findall(text):
        if t == "\n":
            pattern.append(n)
        else:
            n += 1
    return pattern


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _line_breaks(expected: str, actual: str) -> str | None:
    a = _crlf(actual)
    if _line_pattern(expected) == _line_pattern(a):
        return None
    e_lines, a_lines = _lines(expected), _lines(a)
    if a_lines < e_lines:
        return f"{_PREFIX}line breaks lost ({_n(e_lines, 'line')} arrived as {a_lines:,})"
    if a_lines > e_lines:
        return f"{_PREFIX}line breaks changed ({_n(e_lines, 'line')} arrived as {a_lines:,})"
    return f"{_PREFIX}line breaks moved ({_n(e_lines, 'line')}, broken at other places)"


_SPACE = re.compile(r"\s+")


def _other(expected: str, actual: str) -> str:
    if _crlf(actual) == expected:
        return f"{_PREFIX}the words and lines are the same but the line ends arrived as CR LF or CR"
    e, a = _SPACE.sub("", expected), _SPACE.sub("", actual)
    if e == a:
        return f"{_PREFIX}the words are the same but spaces differ"
    if e.casefold() == a.casefold():
        spaces = " and spaces" if expected.casefold() != actual.casefold() else ""
        return f"{_PREFIX}the words are the same but upper and lower case{spaces} differ"
    return f"{_PREFIX}the words are the same but other characters differ (punctuation or symbols)"


# ------------------------------------------------------------------------------ classification


@dataclass(frozen=True)
class TextChange:
    """The nature of a note text change, its message and the profiles of both texts (no note content)."""

    nature: str
    message: str
    expected: str
    actual: str


def _nature_and_message(
    expected: str, actual: str | None, ew: list[str], aw: list[str], negations: frozenset[str]
) -> tuple[str, str]:
    chunks = _chunks(expected)
    order = _chunk_parse(chunks, actual or "")
    if order is not None and len(order) < len(chunks):
        return "chunk_missing", _chunk_missing(expected, chunks, order, negations)
    if actual is None or actual == expected:
        return "other", "note text does not differ"
    if order is not None and order != list(range(len(chunks))):
        arrived = _numbers([i + 1 for i in order], _SHOWN_CHUNKS)
        return "chunk_order", f"{_PREFIX}chunks in the wrong order ({len(chunks)} chunks arrived as {arrived})"
    cut = _truncated_at(expected, actual)
    if cut is not None:
        return "truncated", _truncated(expected, cut, negations)
    message = _encoding(expected, actual)
    if message is not None:
        return "encoding", message
    message = _markup(expected, actual)
    if message is not None:
        return "markup", message
    ec, ac = Counter(ew), Counter(aw)
    lost = ec - ac
    negation = Counter({w: c for w, c in lost.items() if w in negations})
    if negation:
        return "negation_lost", _negation_lost(ew, aw, negation)
    if lost:
        return "words_lost", _words_lost(ew, aw, lost)
    added = ac - ec
    if added:
        return "words_added", _words_added(ew, aw, added)
    if ew == aw:
        message = _line_breaks(expected, actual)
        if message is not None:
            return "line_breaks_lost", message
        return "other", _other(expected, actual)
    return "other", f"{_PREFIX}the same words arrived in another order"


def classify(expected: str, actual: str | None, negations: frozenset[str]) -> TextChange:
    """The nature of the change from ``expected`` to ``actual`` (a pair known to differ): the first of ``NATURES``.

    ``expected`` is the normalised expected text; ``actual`` is the target's chunks joined, None when
    the note has no chunk. ``negations``: the negation words (compared case-insensitively as words).
    The message is one sentence of numbers, negation words, formatting-code tokens and a generic
    garbled-letter example; it never quotes the note. A pair that does not differ after all is
    ``other``, "note text does not differ".
    """
    folded = frozenset(w.casefold() for w in negations)
    ew = words(expected)
    aw = words(actual) if actual is not None else []
    nature, message = _nature_and_message(expected, actual, ew, aw, folded)
    return TextChange(nature, message, profile(expected, len(ew)), profile(actual, len(aw)))


def classify_frame(df: pl.DataFrame, expected: str, actual: str, negations: frozenset[str]) -> pl.DataFrame:
    """``df`` (differing notes only) with ``nature``, ``message``, ``expected_profile``, ``actual_profile``.

    ``expected`` and ``actual`` name the text columns (``classify``); a null expected text counts as
    empty.
    """
    changes = [
        classify(e or "", a, negations)
        for e, a in zip(df.get_column(expected).to_list(), df.get_column(actual).to_list(), strict=True)
    ]
    return df.with_columns(
        pl.Series("nature", [c.nature for c in changes], dtype=pl.String),
        pl.Series("message", [c.message for c in changes], dtype=pl.String),
        pl.Series("expected_profile", [c.expected for c in changes], dtype=pl.String),
        pl.Series("actual_profile", [c.actual for c in changes], dtype=pl.String),
    )
