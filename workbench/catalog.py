"""One headless catalogue of the models and datasets a project can use (no Qt, no torch).

What it merges, in one place (the engine, the job builder and the project pane all read it):

- **models**: the project's models (``project.models()``), then the built-in models each
  registered model kind ships (:attr:`ModelKindSpec.builtin`) that the project does not shadow;
  a folder path given as a model is recognised by :func:`detect_model_kind`, the one place where a
  folder's model kind is detected (``Engine`` at submit and ``workbench add-model`` both use it);
- **datasets**: the built-in datasets (a :class:`DatasetSpec` with ``builtin=True``), then the
  project's datasets whose names are not taken by a built-in one.

A *kind of dataset* (a :class:`DatasetSpec` with ``builtin=False``, e.g. ``image-folder``) is not a
dataset: it describes folders a user may add to a project.  :meth:`Catalog.dataset_kinds` lists
them; :meth:`Catalog.datasets` never does, and resolving one names the fix.

A model resolved from a folder path (not a project or built-in model) is recorded with a run by
its absolute path (:attr:`ResolvedRef.recorded`), so resuming or rerunning the run finds it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.registry import DatasetSpec, ModelKindSpec, Registry

__all__ = [
    "Catalog",
    "CatalogError",
    "DatasetEntry",
    "KindNotDetected",
    "ModelEntry",
    "ResolvedRef",
    "detect_model_kind",
]


class CatalogError(LookupError):
    """A model or dataset reference that does not resolve (the message says why and what to do)."""


class KindNotDetected(ValueError):
    """No registered model kind accepts a folder; ``reasons`` has one line per kind that refused."""

    def __init__(self, path: str, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons) or f"no model kind accepts {path}")
        self.reasons = reasons


@dataclass(frozen=True)
class ResolvedRef:
    """A model or dataset a run uses, resolved to a name, family, kind and absolute path.

    ``folder`` marks a model given as a folder path (neither in the project nor built in)."""

    name: str
    family: str
    kind: str
    path: Path | None
    builtin: bool
    meta: dict[str, Any] = field(default_factory=dict)
    folder: bool = False

    @property
    def recorded(self) -> str:
        """What the run records as its model or dataset: the name, or a folder's absolute path."""
        return str(self.path) if self.folder and self.path is not None else self.name


@dataclass(frozen=True)
class ModelEntry:
    """A model the project can use: one of its own (``builtin=False``) or a built-in one."""

    name: str
    family: str
    kind: str
    path: str  # as stored (project-relative for a project model) or the built-in's path
    builtin: bool
    title: str = ""  # the model kind's title
    source_run: int | None = None


@dataclass(frozen=True)
class DatasetEntry:
    """A concrete dataset: a built-in one (no folder) or one added to the project."""

    name: str
    family: str
    kind: str  # a built-in dataset's kind is its own name, as the engine resolves it
    path: str | None
    builtin: bool
    title: str = ""
    description: str = ""


def detect_model_kind(
    registry: Registry,
    path: str | Path,
    *,
    family: str | None = None,
    checked_only: bool = False,
    allow_pickle: bool = False,
) -> ModelKindSpec:
    """The first registered model kind (of ``family`` when given) that accepts the folder.

    With ``checked_only`` the kinds without a folder check of their own are skipped;
    ``allow_pickle`` reaches the checks that take it.  Raises :class:`KindNotDetected` with one
    reason per kind that refused the folder."""
    reasons = []
    for kind in registry.model_kinds.values():
        if family is not None and kind.family != family:
            continue
        if checked_only and kind.check is None:
            continue
        try:
            kind.check_path(str(path), allow_pickle=allow_pickle)
            kind.verify(str(path))
        except ValueError as exc:
            reasons.append(f"{kind.title}: {exc}")
            continue
        return kind
    raise KindNotDetected(str(path), reasons)


class Catalog:
    """The models and datasets of ``project`` (``None``: the built-ins only) and ``registry``."""

    def __init__(self, project: Any, registry: Registry) -> None:
        self.project = project
        self.registry = registry

    # -- listing -----------------------------------------------------------------------------
    def models(self, family: str | None = None, *, loadable: bool = False) -> list[ModelEntry]:
        """Project models then unshadowed built-ins, of ``family`` when given.  ``loadable``
        keeps only project models whose kind a registered plugin can load."""
        kinds = self.registry.model_kinds
        out, seen = [], set()
        for row in self.project.models() if self.project is not None else []:
            if family is not None and row["family"] != family:
                continue
            if loadable and (
                row["kind"] not in kinds or kinds[row["kind"]].family != row["family"]
            ):
                continue
            seen.add(row["name"])
            kind = kinds.get(row["kind"])
            out.append(
                ModelEntry(
                    row["name"],
                    row["family"],
                    row["kind"],
                    row["path"],
                    False,
                    kind.title if kind else "",
                    row["source_run"],
                )
            )
        for kind in kinds.values():
            if family is not None and kind.family != family:
                continue
            for name, path in kind.builtin:
                if name not in seen:
                    seen.add(name)
                    out.append(ModelEntry(name, kind.family, kind.name, path, True, kind.title))
        return out

    def builtin_model(self, name: str) -> tuple[ModelKindSpec, str] | None:
        """``(kind, path)`` of the built-in model ``name``, or ``None``."""
        for kind in self.registry.model_kinds.values():
            for builtin, path in kind.builtin:
                if builtin == name:
                    return kind, path
        return None

    def datasets(
        self, family: str | None = None, kinds: Iterable[str] | None = None
    ) -> list[DatasetEntry]:
        """Built-in datasets then the project's (a name a built-in one takes is not repeated),
        of ``family`` and of ``kinds`` when given.  Never a kind of dataset."""
        wanted = set(kinds) if kinds is not None else None
        out = []
        builtin_names = set()
        for ds in self.registry.datasets.values():
            if not ds.builtin:
                continue
            builtin_names.add(ds.name)
            if family is not None and ds.family != family:
                continue
            if wanted is not None and ds.name not in wanted:
                continue
            out.append(
                DatasetEntry(ds.name, ds.family, ds.name, None, True, ds.title, ds.description)
            )
        for row in self.project.datasets() if self.project is not None else []:
            if row["name"] in builtin_names:
                continue
            if family is not None and row["family"] != family:
                continue
            if wanted is not None and row["kind"] not in wanted:
                continue
            out.append(DatasetEntry(row["name"], row["family"], row["kind"], row["path"], False))
        return out

    def dataset_kinds(self, family: str | None = None) -> list[DatasetSpec]:
        """The kinds of dataset a user can add to a project (``image-folder``), not datasets."""
        return [
            ds
            for ds in self.registry.datasets.values()
            if not ds.builtin and (family is None or ds.family == family)
        ]

    # -- resolving ---------------------------------------------------------------------------
    def resolve_model(
        self, ref: str, family: str | None, job: str = "this", folder_family: str | None = None
    ) -> ResolvedRef:
        """A project model, a built-in model or a model folder.  A project model of another
        ``family`` than the one given is refused, naming ``job``; a folder must be of ``family``
        (or ``folder_family`` when ``family`` is ``None``)."""
        if not isinstance(ref, str):
            raise CatalogError(f"model must be a name or a folder path, got {ref!r}")
        row = self.project.model(ref) if self.project is not None else None
        if row is not None:
            if family and row["family"] != family:
                raise CatalogError(
                    f"model {ref!r} is a {row['family']} model; job {job} needs a {family} model"
                )
            path = self.project.abspath(row["path"]) if row["path"] else None
            if path is not None and not path.exists():
                raise CatalogError(
                    f"model {ref!r} points to {path}, which does not exist any more; "
                    "move it back or register the model again"
                )
            return ResolvedRef(ref, row["family"], row["kind"], path, row["builtin"], row["meta"])
        builtin = self.builtin_model(ref)
        if builtin is not None:
            kind, path = builtin
            return ResolvedRef(ref, kind.family, kind.name, Path(path), True)
        try:
            folder = Path(ref).expanduser()
            exists = folder.exists()
        except (OSError, ValueError):
            exists = False
        if not exists:
            raise CatalogError(
                f"model {ref!r} is neither a model of this project nor an existing folder; "
                "check the path or add the model to the project first"
            )
        try:
            wanted = family or folder_family
            kind = detect_model_kind(self.registry, folder, family=wanted)
        except KindNotDetected as exc:
            detail = "; ".join(exc.reasons) or f"no {wanted} model kind is registered"
            raise CatalogError(f"{folder} is not a model this job can load ({detail})") from None
        resolved = folder.resolve()
        return ResolvedRef(resolved.name, kind.family, kind.name, resolved, False, folder=True)

    def resolve_dataset(self, ref: str) -> ResolvedRef:
        """A built-in dataset or one of the project's; a kind of dataset is refused with the fix."""
        if not isinstance(ref, str):
            raise CatalogError(f"dataset must be a name, got {ref!r}")
        ds = self.registry.datasets.get(ref)
        if ds is not None:
            if not ds.builtin:
                raise CatalogError(
                    f"{ref!r} is a kind of dataset, not a dataset: add your folder to the project "
                    f"first (workbench add-dataset NAME PATH --kind {ref}, or File > Add dataset)"
                )
            return ResolvedRef(ds.name, ds.family, ds.name, None, True, dict(ds.info))
        rows = self.project.datasets() if self.project is not None else []
        for row in rows:
            if row["name"] == ref:
                path = self.project.abspath(row["path"]) if row["path"] else None
                return ResolvedRef(
                    ref, row["family"], row["kind"], path, row["builtin"], row["meta"]
                )
        known = sorted(self.registry.datasets) + [d["name"] for d in rows]
        raise CatalogError(
            f"unknown dataset {ref[:80]!r}; known datasets: {', '.join(known) or 'none'}"
        )
