"""What a task is: columns it reads, the model head it trains, its metric, its built-in data.

The light half (names, columns, options, built-in rows) imports nothing heavy;
``prepare`` runs in the worker and may import transformers, datasets and torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..schema import Options


@dataclass
class TaskContext:
    """What ``prepare`` gets: tokenizer, options and the rows already column-mapped."""

    tokenizer: Any
    options: Any
    max_length: int
    train_rows: list[dict]
    eval_rows: list[dict]
    model_config: Any = None  # transformers config of the base model, when loaded
    seed: int = 0


@dataclass
class TaskData:
    """Everything the engine needs from a task to build a Trainer."""

    train: Any  # datasets.Dataset, tokenized
    eval: Any
    collator: Any = None
    compute_metrics: Optional[Callable[[Any], dict]] = None
    preprocess_logits: Optional[Callable[[Any, Any], Any]] = None
    generate: bool = False  # Seq2SeqTrainer with predict_with_generate
    generation_kwargs: dict = field(default_factory=dict)
    #: callable(model, tokenizer) -> list of {"prompt", "output"}; logged at each eval
    samples: Optional[Callable[[Any, Any], list[dict]]] = None
    #: callable(samples) -> metrics measured on those samples (distinct-2); merged into the eval event
    sample_metrics: Optional[Callable[[list[dict]], dict]] = None
    #: derives metrics from the eval loss (perplexity)
    from_loss: Optional[Callable[[float], dict]] = None


@dataclass(frozen=True)
class TaskSpec:
    name: str
    title: str
    summary: str
    model_kind: str  # one of methods._base.MODEL_KINDS
    default_model: str  # builtin:* id used when model.name_or_path is "auto"
    columns: dict[str, str]  # column -> what it holds
    metric: str  # primary metric, reported and used for "best"
    greater_is_better: bool
    options: type[Options]
    builtin: Callable[[], list[dict]]  # the project's own data, deterministic
    prepare: Callable[[TaskContext], TaskData]
    label_names: Callable[[list[dict], Any], Optional[list[str]]] = lambda rows, options: None
    scenario: str = ""  # row of the scenario table this task answers
    metrics: tuple[str, ...] = ()
    #: check(rows, options) -> warnings; raises ConfigError naming the row's own line for what cannot train.
    #: Runs on the user's rows before anything is created (empty values are refused before it).
    check: Optional[Callable[[list[dict], Any], list[str]]] = None
    #: measure(tokenizer, row, options, max_length) -> (tokens the row needs whole, dropped by max_length);
    #: None: the row's values joined and tokenized
    measure: Optional[Callable[[Any, dict, Any, int], tuple[int, bool]]] = None
    #: prompt(tokenizer, text, options) -> the prompt's token ids for prediction, formatted as training did
    #: (raising ValueError for input it cannot take); None: the text tokenized as it is. Generation tasks only.
    prompt: Optional[Callable[[Any, Any, Any], list[int]]] = None
