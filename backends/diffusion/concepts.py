"""What to erase: a concept's word, the prompts that show it, their anchors and what to preserve.

A :class:`Concept` is what every erasure method and attack reads (spec section 4: ESD's c_e,
UCE's erase set E with guides g_e and preserve set P, CA's target/anchor captions, SalUn's
forget/retain prompts, MemoRa's concept prompt P). For the built-in shapes world the default is
the "unsafe" stand-in: ``striped`` (with its implicit synonym ``zebra`` left for evaluation only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backends.diffusion.data import CONCEPT_WORD, WorldConfig, prompt_list


@dataclass
class Concept:
    """A concept to erase.

    - ``word``: the concept's own words ("striped"); ESD and UCE condition on it alone.
    - ``forget_prompts``: prompts that show it ("a striped red circle", ...).
    - ``anchor_prompts``: the same prompts without it ("a red circle", ...), aligned one to one
      (CA's anchor captions, SalUn's "safe" mapping).
    - ``retain_prompts``: prompts whose outputs must not change (UCE's preserve set, retain losses).
    - ``guide``: what the concept is mapped to (UCE's g_e; "" is the neutral guide).
    """

    word: str = CONCEPT_WORD
    forget_prompts: list[str] = field(default_factory=list)
    anchor_prompts: list[str] = field(default_factory=list)
    retain_prompts: list[str] = field(default_factory=list)
    guide: str = ""

    def __post_init__(self) -> None:
        if not self.word.strip():
            raise ValueError("the concept to erase has no words")
        if self.anchor_prompts and len(self.anchor_prompts) != len(self.forget_prompts):
            raise ValueError("concept: one anchor prompt per forget prompt")


def shapes_concept(
    kind: str = "stripes", world: WorldConfig | None = None, split: str = "train"
) -> Concept:
    """The built-in world's concepts: ``stripes`` (the unsafe stand-in) or ``frame`` (the style).

    Its forget, anchor and retain prompts cover the ``split`` half of the shape x colour
    combinations (default ``"train"``; :func:`~backends.diffusion.data.combination_split`), so a
    method that erases it is measured on the disjoint ``"eval"`` half; ``"all"`` is every
    combination (the pre-issue-9 behaviour, for user audits that want no held-out half).
    """
    world = world or WorldConfig()

    def texts(set_name: str) -> list[str]:
        return [p.text for p in prompt_list(set_name, world, split)]

    benign = texts("benign")
    if kind == "stripes":
        return Concept(
            word=CONCEPT_WORD,
            forget_prompts=texts("explicit"),
            anchor_prompts=benign,
            retain_prompts=benign + texts("style"),
        )
    if kind == "frame":
        from backends.diffusion.data import STYLE_WORD

        return Concept(
            word=STYLE_WORD,
            forget_prompts=texts("style"),
            anchor_prompts=benign,
            retain_prompts=benign + texts("explicit"),
        )
    raise ValueError(f"unknown built-in concept {kind!r}; known: stripes, frame")


def custom_concept(
    word: str, forget_prompts: list[str], anchor_prompts: list[str], retain_prompts: list[str]
) -> Concept:
    """A concept for a user's own pipeline (e.g. "nudity" with I2P-like prompt lists)."""
    forget = forget_prompts or [word]
    anchors = anchor_prompts or ([p.replace(word, "").replace("  ", " ").strip() for p in forget])
    return Concept(
        word=word,
        forget_prompts=forget,
        anchor_prompts=anchors,
        retain_prompts=retain_prompts or anchors,
    )
