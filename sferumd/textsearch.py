"""Text analysis for message search: Russian and English words to index terms, a person's
query to a safe FTS5 query, and the snippet of a hit. Pure functions; no I/O.

One analysis serves both sides, so a query finds what the index holds:

- fold: NFKC, case folding, ``ё`` read as ``е``, stray combining marks (stress marks:
  "за́мок") dropped, Latin diacritics dropped ("café" is "cafe");
- words: runs of letters and digits (Unicode categories L and N); everything else separates;
- stems: Snowball Russian for a word with a Cyrillic letter, Snowball English for one with a
  Latin letter, the word itself otherwise (digits, other scripts), cut to
  ``MAX_TERM_CHARS``.

Index terms are only letters and digits, and the index's tokenizer (FTS5 ``ascii``) never
splits or changes such a run, so stems go into the index exactly as made here. The room a
message belongs to is indexed as one more term that the analysis can never produce (it
starts with ``_``), which lets a query keep to the rooms a user may read.

A query is never FTS5 syntax: its words are analysed like a message and each term is
quoted, so quotes, ``NEAR``, ``AND``/``OR``/``NOT``, column filters, ``*``, ``^`` and
parentheses are plain text (and mostly not even words). PyStemmer's stemmers are not
thread-safe (the store may index on its writer thread), so each thread has its own.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass

import Stemmer

MAX_TERM_CHARS = 64  # longer words (links, base64) are cut: both sides cut alike
ROOM_TERM_PREFIX = "_"  # "_" + hex of the room id: never a word (words have no "_")

_WORD = re.compile(r"[^\W_]+")
# Combining marks that NFKC leaves standing alone in Cyrillic or Latin text.
_MARKS = re.compile("[\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff]")
_CYRILLIC = re.compile("[\u0400-\u04ff]")
_LATIN = re.compile("[a-z\u00c0-\u024f\u1e00-\u1eff]")
_LATIN_MARKED = re.compile("[\u00c0-\u024f\u1e00-\u1eff]")
# A word of the original text, stress marks and all: what a snippet highlights.
_SOURCE_WORD = re.compile("(?:[^\\W_]|[\u0300-\u036f\u0483-\u0489])+")

_local = threading.local()
_CACHE_WORDS = 50_000  # per thread: a school's working vocabulary fits
MAX_WORD_CHARS = 64  # longer runs of letters are cut: at most ~13 MB of cache per thread


class _Stems:
    """Stemmers and a word -> stem cache (a dict lookup is ~20x cheaper than a stemmer call
    on this hot path: every message is analysed inside its commit)."""

    def __init__(self) -> None:
        self.russian = Stemmer.Stemmer("russian")
        self.english = Stemmer.Stemmer("english")
        self.cache: dict[str, str] = {}

    def stem(self, word: str) -> str:
        stem: str = word
        if _CYRILLIC.search(word):
            stem = self.russian.stemWord(word)
        elif _LATIN.search(word):
            stem = self.english.stemWord(word)
        stem = stem[:MAX_TERM_CHARS]
        if len(self.cache) >= _CACHE_WORDS:
            self.cache.clear()
        self.cache[word] = stem
        return stem


def _stems() -> _Stems:
    found: _Stems | None = getattr(_local, "stems", None)
    if found is None:
        found = _local.stems = _Stems()
    return found


def fold(text: str) -> str:
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = text.casefold().replace("ё", "е")
    return text if text.isascii() else _MARKS.sub("", text)


def _unmark_latin(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize("NFC", _MARKS.sub("", decomposed))


def words(text: str) -> list[str]:
    """The folded words of a text, in order."""
    folded = fold(text)
    out = _WORD.findall(folded)
    if _LATIN_MARKED.search(folded):
        out = [
            _unmark_latin(w) if _LATIN_MARKED.search(w) and not _CYRILLIC.search(w) else w
            for w in out
        ]
    return out


def stems(word_list: list[str]) -> list[str]:
    """The stem of each folded word, in order. Words are cut to ``MAX_WORD_CHARS`` first: a
    "word" of thousands of letters is no word, and must not fill the cache (memory)."""
    analyser = _stems()
    cache = analyser.cache
    cut = [w[:MAX_WORD_CHARS] for w in word_list]
    return [cache.get(w) or analyser.stem(w) for w in cut]


def document_terms(texts: list[str]) -> str:
    """What the index stores for a message: its distinct terms, space-separated."""
    terms: dict[str, None] = {}
    for text in texts:
        terms.update(dict.fromkeys(stems(words(text))))
    return " ".join(terms)


def room_term(room_id: str) -> str:
    return ROOM_TERM_PREFIX + room_id.encode().hex()


@dataclass(frozen=True, slots=True)
class Query:
    """A person's query, analysed: every term must match; the last may match as a prefix."""

    terms: tuple[str, ...]
    prefix: bool  # the last term also matches longer terms ("контр" finds "контрольн")

    def __bool__(self) -> bool:
        return bool(self.terms)

    def fts(self, room_terms: list[str]) -> str:
        """The FTS5 MATCH expression: the terms, within any of these rooms."""
        parts = [f'"{t}"' for t in self.terms]
        if self.prefix:
            parts[-1] += "*"
        rooms = " OR ".join(f'"{r}"' for r in room_terms)
        return " AND ".join(parts) + f" AND ({rooms})"

    def matches(self, stem: str) -> bool:
        if stem in self.terms:
            return True
        return self.prefix and stem.startswith(self.terms[-1])


def parse_query(text: str, max_terms: int, min_prefix_chars: int) -> Query:
    """Any text to a query; the first ``max_terms`` distinct terms count, the rest are dropped.

    The last word matches as a prefix when the text ends inside it (search as you type) and
    its stem has at least ``min_prefix_chars`` characters (a short prefix would match half
    the index).
    """
    found = stems(words(text))
    terms = tuple(dict.fromkeys(found))[:max_terms]
    ends_in_word = bool(text) and bool(_WORD.fullmatch(fold(text[-1:]) or "_"))
    prefix = (
        bool(terms)
        and ends_in_word
        and found[-1] == terms[-1]
        and len(terms[-1]) >= min_prefix_chars
    )
    return Query(terms, prefix)


def _matching_spans(text: str, query: Query) -> list[tuple[int, int]]:
    found = [(m.start(), m.end(), words(m.group())) for m in _SOURCE_WORD.finditer(text)]
    flat = stems([w for _, _, ws in found for w in ws])  # one stemmer call for the text
    spans, i = [], 0
    for start, end, ws in found:
        if any(query.matches(s) for s in flat[i : i + len(ws)]):
            spans.append((start, end))
        i += len(ws)
    return spans


@dataclass(frozen=True, slots=True)
class Snippet:
    text: str
    highlights: list[tuple[int, int]]  # [start, end) in code points of ``text``

    def to_wire(self) -> dict[str, object]:
        return {"text": self.text, "highlights": [list(h) for h in self.highlights]}


def snippet(texts: list[str], query: Query, max_chars: int) -> Snippet | None:
    """A window of the first text with a matching word, matches marked; None without text."""
    if not texts:
        return None
    for text in texts:
        spans = _matching_spans(text, query)
        if spans:
            break
    else:
        text, spans = texts[0], []
    start = 0
    if spans and len(text) > max_chars:
        start = max(0, min(spans[0][0] - max_chars // 4, len(text) - max_chars))
    end = min(len(text), start + max_chars)
    head = "…" if start > 0 else ""
    tail = "…" if end < len(text) else ""
    shift = len(head) - start
    kept = [(a + shift, b + shift) for a, b in spans if a >= start and b <= end]
    return Snippet(head + text[start:end] + tail, kept)
