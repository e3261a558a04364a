"""SKeB domain graph and entity extraction (spec section 5, "Domain graph").

The graph G = (V, E, w) is built from a list of chapters, each a list of entity names:

* names are normalised: whitespace collapsed, a leading "the" stripped ("the Dursleys" ->
  "Dursleys"), then mapped through the alias map (exact key first, then case-insensitive);
* ``freq(v)`` (node attribute ``freq``) is the number of chapters listing v;
* an undirected edge joins every pair of entities co-listed in a chapter; its ``weight`` is the
  number of chapters in which the pair co-occurs.

A name listed twice in one chapter (or two aliases of one entity) counts once for that chapter.
The author's notebook counts such duplicates twice and adds self-loops; the spec defines freq and
weight as chapter counts, which is what is implemented here.

Entity extraction (:class:`EntityExtractor`) is case-insensitive and whole-word over node names and
alias keys, longest surface form first: a longer match claims its characters, so "Ginny Weasley"
is not also read as the alias "Weasley". Entities whose name is a whole-word substring of another
extracted entity's name are then dropped. Results are canonical names in order of first appearance.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from pathlib import Path

import networkx as nx

__all__ = [
    "CHAPTER_COLUMN",
    "ENTITIES_COLUMN",
    "ALIAS_COLUMNS",
    "strip_the",
    "normalize_name",
    "build_graph",
    "graph_from_csv",
    "read_aliases",
    "SurfaceMatcher",
    "EntityExtractor",
]

#: Column holding the chapter id in a graph CSV (the paper's ``KG - Sheet1.csv`` uses "Chapter").
CHAPTER_COLUMN = "Chapter"
#: Column holding a chapter's entities, separated by commas or semicolons.
ENTITIES_COLUMN = "Entities"
#: Columns of an alias CSV: one row per alias and its canonical name.
ALIAS_COLUMNS = ("alias", "canonical")

_THE = re.compile(r"^the\s+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_SPLIT = re.compile(r"[,;]")


def strip_the(name: str) -> str:
    """``name`` with whitespace collapsed and one leading "the " removed (case-insensitive)."""
    return _THE.sub("", _SPACE.sub(" ", name.strip()))


class _AliasTable:
    """Alias lookup: exact key first, then a case-insensitive key (both with "the" stripped)."""

    def __init__(self, aliases: Mapping[str, str] | None) -> None:
        self.exact: dict[str, str] = {}
        self.folded: dict[str, str] = {}
        for alias, canonical in (aliases or {}).items():
            key, target = strip_the(alias), strip_the(canonical)
            if not key or not target:
                continue
            self.exact[key] = target
            self.folded.setdefault(key.casefold(), target)

    def __call__(self, name: str) -> str:
        base = strip_the(name)
        if base in self.exact:
            return self.exact[base]
        return self.folded.get(base.casefold(), base)


def normalize_name(name: str, aliases: Mapping[str, str] | None = None) -> str:
    """The canonical form of ``name``: "the" stripped, then mapped through ``aliases``."""
    return _AliasTable(aliases)(name)


def build_graph(
    chapters: Iterable[Iterable[str]], aliases: Mapping[str, str] | None = None
) -> nx.Graph:
    """The co-occurrence graph of ``chapters`` (node attr ``freq``, edge attr ``weight``).

    Each chapter's names are normalised (see module docstring) and de-duplicated; empty names are
    ignored. Every chapter adds 1 to the ``freq`` of each entity it lists and 1 to the ``weight``
    of each pair it lists together.
    """
    table = _AliasTable(aliases)
    graph = nx.Graph()
    for chapter in chapters:
        names: list[str] = []
        for raw in chapter:
            name = table(raw)
            if name and name not in names:
                names.append(name)
        for name in names:
            if name in graph:
                graph.nodes[name]["freq"] += 1
            else:
                graph.add_node(name, freq=1)
        for u, v in combinations(names, 2):
            if graph.has_edge(u, v):
                graph[u][v]["weight"] += 1
            else:
                graph.add_edge(u, v, weight=1)
    return graph


def _columns(header: Sequence[str] | None, required: Sequence[str], path: Path) -> dict[str, str]:
    """Map each required column (case-insensitive, stripped) to its header spelling."""
    present = {h.strip().casefold(): h for h in (header or []) if h is not None}
    missing = [c for c in required if c.casefold() not in present]
    if missing:
        found = ", ".join(repr(h) for h in (header or [])) or "none"
        raise ValueError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"expected {', '.join(repr(c) for c in required)}; found {found}"
        )
    return {c: present[c.casefold()] for c in required}


def read_aliases(path: str | Path) -> dict[str, str]:
    """Read an alias map: a JSON object ``{alias: canonical}`` or a CSV with columns
    ``alias`` and ``canonical``."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object mapping alias to canonical name")
        return {str(k): str(v) for k, v in data.items()}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = _columns(reader.fieldnames, ALIAS_COLUMNS, path)
        out = {}
        for row in reader:
            alias = (row[cols[ALIAS_COLUMNS[0]]] or "").strip()
            canonical = (row[cols[ALIAS_COLUMNS[1]]] or "").strip()
            if alias and canonical:
                out[alias] = canonical
        return out


def graph_from_csv(
    path: str | Path, alias_path: str | Path | None = None
) -> tuple[nx.Graph, dict[str, str]]:
    """Build the graph from a chapter table; return it with the alias map used.

    The CSV has one row per chapter with the columns ``Chapter`` (the chapter id) and
    ``Entities`` (its entities separated by commas or semicolons); other columns (the paper's
    ``Book``) are ignored, and header matching is case-insensitive, so the paper's
    ``KG - Sheet1.csv`` (``Book,Chapter,Entities``) loads as is. A missing column raises
    ``ValueError`` naming it. ``alias_path`` is read with :func:`read_aliases`.
    """
    path = Path(path)
    aliases = read_aliases(alias_path) if alias_path is not None else {}
    chapters: list[list[str]] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = _columns(reader.fieldnames, (CHAPTER_COLUMN, ENTITIES_COLUMN), path)
        for row in reader:
            cell = row.get(cols[ENTITIES_COLUMN]) or ""
            chapters.append([e.strip() for e in _SPLIT.split(cell) if e.strip()])
    return build_graph(chapters, aliases), aliases


def _pattern(surface: str) -> re.Pattern[str]:
    """Case-insensitive whole-word pattern for ``surface``; any run of spaces matches."""
    body = r"\s+".join(re.escape(part) for part in surface.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


class SurfaceMatcher:
    """Find surface forms in text, longest first, each match claiming its characters.

    ``forms`` maps a surface string to the label it stands for. :meth:`find` returns
    ``(start, label)`` pairs for the non-overlapping matches, sorted by position.
    """

    def __init__(self, forms: Mapping[str, str]) -> None:
        cleaned: dict[str, str] = {}
        seen: set[str] = set()
        for surface, label in forms.items():
            s = _SPACE.sub(" ", surface.strip())
            if s and s.casefold() not in seen:
                seen.add(s.casefold())
                cleaned[s] = label
        # Longest first; ties broken alphabetically so results do not depend on dict order.
        order = sorted(cleaned, key=lambda s: (-len(s), s.casefold()))
        self._forms = [(_pattern(s), cleaned[s]) for s in order]

    def find(self, text: str) -> list[tuple[int, str]]:
        return [(start, label) for start, _end, label in self.find_spans(text)]

    def find_spans(self, text: str) -> list[tuple[int, int, str]]:
        """``(start, end, label)`` of the non-overlapping matches, sorted by position."""
        claimed = [False] * len(text)
        hits: list[tuple[int, int, str]] = []
        for pattern, label in self._forms:
            for m in pattern.finditer(text):
                if any(claimed[m.start() : m.end()]):
                    continue
                claimed[m.start() : m.end()] = [True] * (m.end() - m.start())
                hits.append((m.start(), m.end(), label))
        hits.sort()
        return hits


def _contains_word(outer: str, inner: str) -> bool:
    return outer.casefold() != inner.casefold() and _pattern(inner).search(outer) is not None


class EntityExtractor:
    """Extract a prompt's entities (canonical graph node names) from text.

    Matches node names and alias keys (with a leading "the" stripped) case-insensitively as whole
    words, longest first; an alias counts only if its canonical name is a node. Entities whose
    name occurs as a whole word inside another extracted entity's name are dropped (spec: "drop
    entities that are substrings of another extracted entity"). Order: first appearance in text.
    """

    def __init__(self, graph: nx.Graph, aliases: Mapping[str, str] | None = None) -> None:
        nodes = {str(n) for n in graph.nodes}
        # Node names first, so a node spelled like an alias key keeps its own name.
        forms: dict[str, str] = {n: n for n in sorted(nodes)}
        for alias, canonical in _AliasTable(aliases).exact.items():
            if canonical in nodes:
                forms.setdefault(alias, canonical)
        self._matcher = SurfaceMatcher(forms)

    def extract(self, text: str) -> list[str]:
        found: list[str] = []
        for _, name in self._matcher.find(text):
            if name not in found:
                found.append(name)
        return [e for e in found if not any(_contains_word(o, e) for o in found)]
