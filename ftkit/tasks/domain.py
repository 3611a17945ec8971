"""Domain adaptation: a causal LM keeps reading a field's own texts; perplexity measures the fit.

The built-in corpus is the notes of a fictional field, the botany of the
Calder Reach: species cards, care notes and field observations that always
state the same facts about the same plants, so a model can learn them.
"""
from __future__ import annotations

from ._base import TaskContext, TaskData, TaskSpec
from ._causal import GenerationOptions, plain_text_data, text_measure
from ._text import generate, pick
from ..schema import field


class DomainOptions(GenerationOptions):
    sample_prompts: list[str] = field(
        factory=lambda: ["Species: Emberleaf.", "Care note for Saltbell:", "Field observation:"],
        help="Prompts generated from at each evaluation (the start of a text in your domain).",
        builtin_data=True,
    )


# name, family, region, soil, height cm, season, colour, use, caution
SPECIES = [
    ("Emberleaf", "Solvaceae", "the Tarn Uplands", "chalky", 40, "late spring", "copper", "dye", "its sap stains the skin"),
    ("Saltbell", "Marinidae", "the Brine Coast", "sandy", 25, "early summer", "white", "salt tolerance trials", "it wilts in fresh water"),
    ("Greyvine", "Corvaceae", "the Hollow Marsh", "peaty", 300, "autumn", "grey", "rope fibre", "its tendrils strangle young trees"),
    ("Moonfern", "Lunaceae", "the Vell Forest", "loamy", 60, "midwinter", "silver", "lamp oil", "its spores irritate the eyes"),
    ("Copperthorn", "Solvaceae", "the Tarn Uplands", "rocky", 150, "midsummer", "orange", "hedging", "its thorns carry a mild toxin"),
    ("Dewcap", "Lunaceae", "the Vell Forest", "loamy", 10, "early spring", "blue", "tea", "it is easily mistaken for rotcap"),
    ("Ashwort", "Cinderidae", "the Scorch Plains", "volcanic", 80, "late summer", "red", "wound salve", "its smoke is bitter"),
    ("Brightmoss", "Lunaceae", "the Hollow Marsh", "peaty", 5, "all year", "green", "bedding for seedlings", "it smothers low plants"),
    ("Tidegrass", "Marinidae", "the Brine Coast", "sandy", 90, "spring", "yellow", "dune binding", "its blades cut the hands"),
    ("Kestrel Lily", "Aviaceae", "the Skyrest Cliffs", "rocky", 70, "early summer", "violet", "perfume", "its pollen stains cloth"),
    ("Hearthroot", "Cinderidae", "the Scorch Plains", "volcanic", 30, "winter", "crimson", "fuel", "it burns very hot"),
    ("Snowcomb", "Aviaceae", "the Skyrest Cliffs", "chalky", 20, "late winter", "white", "winter honey", "frost splits its stems"),
    ("Marrowbean", "Corvaceae", "the Hollow Marsh", "clay", 120, "midsummer", "pink", "food", "raw pods cause cramps"),
    ("Glassreed", "Marinidae", "the Brine Coast", "clay", 200, "autumn", "clear", "whistles", "it shatters when frozen"),
    ("Duskberry", "Corvaceae", "the Vell Forest", "loamy", 180, "late autumn", "black", "jam", "unripe berries are poisonous"),
    ("Sunspur", "Solvaceae", "the Scorch Plains", "sandy", 55, "midsummer", "gold", "sun charts", "it turns to follow the sun"),
]
KINDS = ["card", "care", "observation", "comparison"]
SITES = ["the north terrace", "the old quarry", "the river bend", "the upper meadow", "the east gully", "the mill pond"]
OBSERVERS = ["Warden Ilse", "Botanist Corran", "Student Mael", "Keeper Odra", "Surveyor Fenn"]
WATER = {"chalky": "every week", "sandy": "every three days", "peaty": "rarely", "loamy": "twice a week",
         "rocky": "every ten days", "volcanic": "once a month", "clay": "every two weeks"}


def _card(s) -> str:
    name, family, region, soil, height, season, colour, use, caution = s
    return (f"Species: {name}. Family: {family}. Native to {region}. It grows in {soil} soil, reaches {height} cm "
            f"and blooms in {season} with {colour} flowers. Growers use it for {use}. Caution: {caution}.")


def _care(s) -> str:
    name, _, _, soil, height, season, colour, use, caution = s
    return (f"Care note for {name}: plant it in {soil} soil and water it {WATER[soil]}. Give it {height} cm of room "
            f"to grow. Expect {colour} flowers in {season}. Remember that {caution}.")


def _observation(s, rng, i) -> str:
    name, family, region, soil, _, season, colour, _, _ = s
    return (f"Field observation {i + 1}: {pick(rng, OBSERVERS)} found {name} at {pick(rng, SITES)} in {region}. "
            f"The {soil} soil there suits it. It was in bloom, as {name} is in {season}, with {colour} flowers. "
            f"It belongs to the {family}.")


def _comparison(a, b) -> str:
    taller = a if a[4] >= b[4] else b
    same = "share the family" if a[1] == b[1] else "belong to different families"
    return (f"Comparison: {a[0]} and {b[0]} {same}, {a[1]} and {b[1]}. {a[0]} grows in {a[3]} soil in {a[2]}; "
            f"{b[0]} grows in {b[3]} soil in {b[2]}. {taller[0]} is the taller at {taller[4]} cm.")


def _note(rng, i) -> dict:
    s = pick(rng, SPECIES)
    kind = pick(rng, KINDS)
    if kind == "card":
        text = _card(s)
    elif kind == "care":
        text = _care(s)
    elif kind == "observation":
        text = _observation(s, rng, i)
    else:
        other = pick(rng, [o for o in SPECIES if o is not s])
        text = _comparison(s, other)
    return {"text": text}


def builtin() -> list[dict]:
    return generate(_note, 1500, seed=2)


def prepare(ctx: TaskContext) -> TaskData:
    return plain_text_data(ctx)


SPECS = [
    TaskSpec(
        name="domain",
        title="Domain adaptation",
        summary="Keep training a causal LM on a field's own texts (notes, manuals); perplexity.",
        model_kind="causal_lm",
        default_model="builtin:tiny-llama",
        columns={"text": "a document or passage from the domain"},
        metric="perplexity",
        greater_is_better=False,
        metrics=("perplexity",),
        options=DomainOptions,
        builtin=builtin,
        prepare=prepare,
        measure=text_measure,
        scenario="adapt a pre-trained LLM to a task or domain",
    )
]
