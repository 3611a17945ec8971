"""Creative generation: a causal LM learns a form (here four-line rhyming verses) and writes new ones.

Metrics: perplexity on held-out texts, and distinct-2 (distinct word pairs
over all word pairs) of the samples generated at each evaluation, a cheap
check that the model does not repeat itself.
"""
from __future__ import annotations

from ._base import TaskContext, TaskData, TaskSpec
from ._causal import GenerationOptions, distinct_n, plain_text_data, text_measure
from ._text import generate, pick
from ..schema import field


class CreativeOptions(GenerationOptions):
    sample_prompts: list[str] = field(
        factory=lambda: ["Title: The Lantern\n", "Title: The Harbour\n", "Title: The Fox\n", "Title: The Orchard\n"],
        help="Openings the model continues at each evaluation.",
        builtin_data=True,
    )
    max_new_tokens: int = field(48, "Tokens generated per sample (a four-line verse is about 45).", ge=1, le=512)
    temperature: float = field(0.8, "Sampling temperature for the samples; 0 decodes greedily.", ge=0, le=5)


THEMES = ["Lantern", "Harbour", "Fox", "Orchard", "Clocktower", "Meadow", "Lighthouse", "Willow", "Kettle",
          "Comet", "Garden", "Ferry", "Owl", "Bakery", "Glacier", "Violin"]
RHYMES = [
    ["night", "light", "flight", "height", "kite", "sight"],
    ["sea", "tree", "bee", "key", "quay", "plea"],
    ["day", "bay", "way", "spray", "hay", "clay"],
    ["moon", "dune", "tune", "noon", "spoon", "lagoon"],
    ["rain", "lane", "plain", "chain", "grain", "train"],
    ["sky", "eye", "lullaby", "butterfly", "reply", "rye"],
    ["stone", "bone", "throne", "cone", "drone", "phone"],
    ["hill", "mill", "sill", "quill", "rill", "windowsill"],
]
ADJ = ["silver", "quiet", "golden", "restless", "gentle", "hollow", "amber", "weary", "bright", "secret"]
NOUNS = ["wind", "river", "sparrow", "candle", "shadow", "lantern", "heron", "story", "ember", "whisper"]
VERBS = ["drifts", "wanders", "glimmers", "sleeps", "hums", "dances", "waits", "trembles", "sings", "turns"]
LINES = [
    "The {adj} {noun} {verb} across the {end},",
    "and every {noun} {verb} beside the {end}.",
    "A {adj} {noun} remembers the {end},",
    "while {adj} {nouns} dream about the {end}.",
    "The {noun} {verb} beneath the {end},",
    "so hush, the {adj} {noun} {verb} by the {end}.",
    "I watch the {noun} that {verb} near the {end},",
    "until the {adj} {noun} finds the {end}.",
]


def _line(rng, end: str) -> str:
    noun = pick(rng, NOUNS)
    nouns = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    line = pick(rng, LINES).format(adj=pick(rng, ADJ), noun=noun, nouns=nouns, verb=pick(rng, VERBS), end=end)
    return line[0].upper() + line[1:]


def _verse(rng, i) -> dict:
    theme = pick(rng, THEMES)
    first, second = rng.sample(range(len(RHYMES)), 2)
    a, b = rng.sample(RHYMES[first], 2), rng.sample(RHYMES[second], 2)
    lines = [_line(rng, a[0]), _line(rng, a[1]), _line(rng, b[0]), _line(rng, b[1])]
    lines[-1] = lines[-1].rstrip(",.") + "."
    return {"text": f"Title: The {theme}\n" + "\n".join(lines)}


def builtin() -> list[dict]:
    return generate(_verse, 2000, seed=4)


def prepare(ctx: TaskContext) -> TaskData:
    def diversity(samples: list[dict]) -> dict:
        return {"distinct_2": distinct_n([s["output"] for s in samples], 2)}

    return plain_text_data(ctx, sample_metrics=diversity)


SPECS = [
    TaskSpec(
        name="creative",
        title="Creative generation",
        summary="Learn a form (verses, stories, lyrics) and write new pieces; perplexity and distinct-2.",
        model_kind="causal_lm",
        default_model="builtin:tiny-llama",
        columns={"text": "one piece: a poem, a story, a lyric"},
        metric="perplexity",
        greater_is_better=False,
        metrics=("perplexity", "distinct_2"),
        options=CreativeOptions,
        builtin=builtin,
        prepare=prepare,
        measure=text_measure,
        scenario="music, art and other creative generation",
    )
]
