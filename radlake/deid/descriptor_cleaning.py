"""PS3.15 action C on free text: a descriptor keeps only what a clinical vocabulary knows.

Table E.1-1 says to *clean* a descriptor (Study Description, Protocol Name, Patient Comments, ...):
"replace with values of similar meaning known not to contain identifying information". A list of
what identifies can never be complete (names of other persons, phones, addresses), so the cleaner
works from an allow-list: a word is kept only when it is a term of the :class:`Vocabulary` (the
shipped ``clinical_vocabulary.txt`` plus the profile's own terms), a number or measurement, or a
short acquisition code (``T1``, ``B30f``, ``L4``). Before the words are looked at, patterns that
identify whatever their words are removed: e-mail and web addresses, DICOM person names (``^``),
telephone numbers, dates, street addresses and postcodes, labelled or digit-heavy identifiers, and
the names after an honorific ("Dr", "Mrs", "Sister", "Nurse" ...) or a relation word ("spouse",
"daughter", "neighbour" ...), even when such a name is also a clinical word ("Dr Head").

Each removed run (removed spans separated only by spaces or punctuation) becomes one :data:`MARKER`,
so a reader sees that something was there; where the marker would make a value longer than its VR
allows, the runs are dropped instead. The functions are pure; :func:`clean_descriptor` is cached
because one series repeats the same descriptors in every instance.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

MARKER = "[REMOVED]"
VOCABULARY_FILE = "clinical_vocabulary.txt"
# PS3.5 Table 6.2-1 maximum value lengths (characters) of the text VRs action C applies to.
MAX_LENGTH = {"AE": 16, "SH": 16, "LO": 64, "PN": 64, "ST": 1024, "LT": 10240}

# PS3.16 Table 8-1 coding schemes whose Code Meanings are standard text; every other designator
# (``99*``, ``L``, ``LOCAL``, a hospital's own) is local and its meanings are cleaned.
STANDARD_CODING_SCHEMES = frozenset({
    "DCM", "SCT", "SRT", "SNM3", "LN", "UCUM", "FMA", "RADLEX", "NCIT", "UMLS", "MSH", "I10", "I9C", "I10P",
    "I11", "C4", "C5", "HPC", "ACR", "BI", "UBERON", "NCBITAXON", "RXNORM", "ATC", "MDC", "IEEE", "NEU", "MA",
    "BARI", "ITIS_TSN", "PUBCHEM_CID", "ISO3166_1", "ISO639_1", "ISO639_2", "ISO639_3", "HL7", "DC",
})

HONORIFICS = frozenset({
    "mr", "mrs", "ms", "miss", "mx", "dr", "doctor", "prof", "professor", "sister", "nurse", "sr", "rev",
    "revd", "father", "sir", "dame", "lady", "lord", "madam", "mme", "mlle", "herr", "frau", "señor",
    "attn", "attending", "consultant", "radiologist", "surgeon",
})
RELATIONS = frozenset({
    "spouse", "wife", "husband", "partner", "daughter", "son", "mother", "father", "mum", "mom", "dad",
    "sister", "brother", "friend", "neighbour", "neighbor", "aunt", "uncle", "niece", "nephew", "cousin",
    "grandmother", "grandfather", "grandson", "granddaughter", "carer", "caregiver", "guardian", "fiance",
    "fiancee", "girlfriend", "boyfriend", "colleague", "kin", "nok", "contact", "parent",
})
# Honorifics that are also clinical abbreviations in capitals (MR, MS, DR, SR): honorifics only as written "Mr".
_TITLE_CASE_ONLY = frozenset({"mr", "ms", "dr", "sr"})
# Words that end a name after an honorific or relation word ("Dr Smith for ...", "mother with ...").
_STOP = frozenset({
    "a", "an", "and", "or", "the", "of", "for", "with", "without", "to", "from", "in", "on", "at", "by", "per",
    "before", "after", "is", "was", "has", "had", "who", "re", "via", "as", "please", "call", "if", "but",
})
_MAX_NAME_WORDS = 3

_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_URL = r"(?:https?://|www\.)\S+"
_PERSON_NAME = r"[^\s\\]*\^[^\s\\]*"
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
          r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DATE = (rf"\b\d{{1,4}}[-/.]\d{{1,2}}[-/.]\d{{2,4}}\b"
         rf"|\b\d{{1,2}}(?:st|nd|rd|th)?[\s-]*{_MONTH}\b\.?(?:[\s,-]*\d{{2,4}}\b)?"
         rf"|\b{_MONTH}\b\.?[\s-]*\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s*\d{{4}}\b)?"
         rf"|\b{_MONTH}\b\.?[\s-]*\d{{4}}\b")
_PHONE = r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,5}\)[\s.-]?)?\d{2,5}(?:[\s.-]\d{2,5}){1,4}(?![\w.]|\.\d)"
_STREET = (r"\b\d{1,5}[a-z]?,?(?:\s+[a-z][a-z'.-]*){1,4}\s+(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr"
           r"|close|way|court|boulevard|blvd|place|crescent|terrace|square|gardens|grove|parade|highway|hwy"
           r"|strasse|straße|rue|weg|laan|straat)\b\.?")
_PO_BOX = r"\bp\.?\s?o\.?\s+box\s+\w+"
_LABELLED_ID = (r"\b(?:mrn|nhs|ssn|hospital\s+(?:no|number)|acc(?:ession)?|case|id|ref)\b\.?\s*(?:no\.?|number|#)?"
                r"\s*[:#]?\s*(?=[a-z0-9-]*\d)[a-z0-9-]{3,}")
_PATTERNS = re.compile("|".join(f"(?:{p})" for p in (
    _EMAIL, _URL, _PERSON_NAME, _LABELLED_ID, _PO_BOX, _DATE, _STREET, _PHONE)), re.IGNORECASE)
# Postcodes are matched in capitals only: lower-case lookalikes are ordinary words and codes.
_POSTCODE = re.compile(r"\b(?:[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}|[A-Z]\d[A-Z]\s?\d[A-Z]\d)\b")
_WORD = re.compile(r"[^\s,;:()\[\]{}\"<>|\\=]+")
_EDGE_PUNCT = ".,;:!?'\"*"
_NUMBER = re.compile(r"[+-]?\d{1,3}(?:[.,]\d+)?(?:x\d{1,3})?"
                     r"(?:mm|cm|m|kv|kvp|mas|ma|ms|s|sec|min|h|hr|hrs|d|t|hu|ml|cc|mgy|mg|kg|g|y|yo|yr|yrs|wk|wks"
                     r"|mo|%|x|st|nd|rd|th|d)?", re.IGNORECASE)
# Medical word formation: a long word with one of these endings is a clinical term (radiculopathy,
# cholecystectomy, scoliosis); no common given name or surname ends so.
_CLINICAL_SUFFIX = re.compile(
    r"[a-z]{4,}(?:ectomy|ectomies|otomy|ostomy|plasty|scopy|graphy|grams?|itis|pathy|algia|a?emia|osis|oses"
    r"|uria|megaly|plegia|paresis|ectasis|lysis|ations?|ness)")
_CODE = re.compile(r"[a-z]{1,3}\d{1,3}[a-z]{0,2}", re.IGNORECASE)
_SPLIT = re.compile(r"[-/+&_.]")
_MARKER = re.compile(re.escape(MARKER))
_GAP = re.compile(r"[\s,;:.()\-/&+_*#]*")


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """The terms a cleaned descriptor may keep (lower case); compared by identity, for caching."""

    terms: frozenset[str]

    def __contains__(self, word: object) -> bool:
        return word in self.terms

    def with_terms(self, extra: Iterable[str]) -> Vocabulary:
        """This vocabulary plus ``extra`` (a profile's allow-list; phrases count word by word)."""
        words = {w.strip(_EDGE_PUNCT).lower() for term in extra for w in _WORD.findall(term)}
        words.discard("")
        return self if words <= self.terms else Vocabulary(self.terms | words)


def parse_vocabulary(lines: Iterable[str]) -> Vocabulary:
    """A vocabulary from a term list: one or more terms a line, ``#`` lines are comments."""
    terms = {w.lower() for line in lines if not line.startswith("#") for w in line.split()}
    return Vocabulary(frozenset(terms))


@lru_cache(maxsize=1)
def clinical_vocabulary() -> Vocabulary:
    """The shipped vocabulary (provenance: ``CLINICAL_VOCABULARY.md``)."""
    text = resources.files("radlake.deid").joinpath(VOCABULARY_FILE).read_text(encoding="utf-8")
    return parse_vocabulary(text.splitlines())


@lru_cache(maxsize=1)
def vocabulary_digest() -> str:
    """SHA-256 of the shipped vocabulary: part of the profile version, so a changed vocabulary shows in every
    event and row de-identified with it."""
    data = resources.files("radlake.deid").joinpath(VOCABULARY_FILE).read_bytes()
    return hashlib.sha256(data).hexdigest()


def is_local_coding_scheme(designator: str) -> bool:
    """Whether a Coding Scheme Designator names a local scheme (anything not in :data:`STANDARD_CODING_SCHEMES`)."""
    return designator.strip().upper() not in STANDARD_CODING_SCHEMES


def _known(word: str, vocabulary: Vocabulary) -> bool:
    """Whether a word (no spaces) may stay: a term, a number or measurement, a short code, or made of those."""
    lowered = word.strip(_EDGE_PUNCT).lower()
    if not lowered or lowered in vocabulary.terms:
        return True
    if lowered.endswith("'s") and lowered[:-2] in vocabulary.terms:
        return True
    if _HAS_DIGIT.search(lowered):
        if _NUMBER.fullmatch(lowered) or _CODE.fullmatch(lowered):
            return True
    elif len(lowered) >= 8 and _CLINICAL_SUFFIX.fullmatch(lowered):
        return True
    parts = [p for p in _SPLIT.split(lowered) if p]
    return len(parts) > 1 and all(_known(p, vocabulary) for p in parts)


def _pattern_spans(text: str, vocabulary: Vocabulary) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if _PATTERN_HINT.search(text) is None:  # each pattern needs one of these: most descriptors have none
        return spans
    for match in _PATTERNS.finditer(text):
        found = match.group()
        if (_STREET_ONLY.fullmatch(found) and all(_known(w, vocabulary) for w in _WORD.findall(found)[1:-1])):
            continue  # "3 PHASE ST": clinical words before a street-like suffix are not an address
        if found.replace(".", "").replace(" ", "").isdigit() and sum(c.isdigit() for c in found) < 7 \
                and _PHONE_ONLY.fullmatch(found):
            continue  # a list of numbers ("120 100") is not a telephone number
        spans.append(match.span())
    spans += [m.span() for m in _POSTCODE.finditer(text)]
    return spans


_STREET_ONLY = re.compile(_STREET, re.IGNORECASE)
_HAS_DIGIT = re.compile(r"\d")
_PATTERN_HINT = re.compile(r"[\d@^]|www\.|://|\bbox\b", re.IGNORECASE)
_PHONE_ONLY = re.compile(_PHONE)


def _name_spans(words: list[re.Match[str]]) -> list[tuple[int, int]]:
    """Words after an honorific (any capitalised word) or a relation word (Title-case words)."""
    spans = []
    for i, word in enumerate(words):
        key = word.group().strip(_EDGE_PUNCT).lower()
        honorific, relation = key in HONORIFICS, key in RELATIONS
        if key in _TITLE_CASE_ONLY and not word.group()[1:].rstrip(".").islower():
            honorific = False
        if not (honorific or relation):
            continue
        for following in words[i + 1 : i + 1 + _MAX_NAME_WORDS]:
            text = following.group().strip(_EDGE_PUNCT)
            initial = len(text) == 1 and text.isupper()  # "Dr A. B. Okafor": not the article "a"
            if not text or (text.lower() in _STOP and not initial) or not text[0].isalpha() or not text[0].isupper():
                break
            title = len(text) > 1 and text[1:].replace("'", "").replace("-", "").islower()
            if not (honorific or title) or (relation and text.lower() in RELATIONS):
                break
            spans.append(following.span())
    return spans


def removed_spans(text: str, vocabulary: Vocabulary) -> list[tuple[int, int]]:
    """The character spans of ``text`` that identify or are not known to be clinical, merged and sorted."""
    spans = _pattern_spans(text, vocabulary)
    markers = [m.span() for m in _MARKER.finditer(text)]  # cleaned text cleaned again stays as it is
    words = list(_WORD.finditer(text))
    if spans or markers:
        covered = _coverage(len(text), spans + markers)
        words = [m for m in words if not any(covered[m.start() : m.end()])]
    spans += _name_spans(words)
    spans += [m.span() for m in words if not _known(m.group(), vocabulary)]
    return _merge(text, spans)


def _coverage(length: int, spans: list[tuple[int, int]]) -> list[bool]:
    covered = [False] * length
    for start, end in spans:
        covered[start:end] = [True] * (end - start)
    return covered


def _merge(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping spans, and spans separated only by spaces or punctuation, become one."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and (start <= merged[-1][1] or _GAP.fullmatch(text, merged[-1][1], start)):
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _rebuild(text: str, spans: list[tuple[int, int]], marker: str) -> str:
    parts, pos = [], 0
    for start, end in spans:
        parts += [text[pos:start], f" {marker} " if marker else " "]
        pos = end
    parts.append(text[pos:])
    squeezed = re.sub(r"\s{2,}", " ", "".join(parts))
    return re.sub(r"\(\s+", "(", re.sub(r"\s+([,;:.)])", r"\1", squeezed)).strip()


@lru_cache(maxsize=8192)
def clean_descriptor(text: str, vocabulary: Vocabulary, max_length: int | None = None) -> str:
    """``text`` with every identifying or unknown span replaced by :data:`MARKER` (dropped where the
    marker would make it longer than ``max_length``)."""
    if not text.strip():
        return text.strip()
    spans = removed_spans(text, vocabulary)
    if not spans:
        return text.strip()
    cleaned = _rebuild(text, spans, MARKER)
    if max_length is not None and len(cleaned) > max_length:
        cleaned = _rebuild(text, spans, "")
    return cleaned


__all__ = [
    "MARKER",
    "MAX_LENGTH",
    "STANDARD_CODING_SCHEMES",
    "Vocabulary",
    "clean_descriptor",
    "clinical_vocabulary",
    "is_local_coding_scheme",
    "parse_vocabulary",
    "removed_spans",
]
