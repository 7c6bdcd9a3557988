"""Run configuration: typed dataclasses, YAML files, dotted overrides (`train.lr=3e-4`).

Unknown keys are errors (with a suggestion), never silently ignored: a typo in a config must
not quietly train with a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from hib.errors import ConfigError

DEFAULT_SEED = 1337


@dataclass
class DataConfig:
    root: str | None = None  # a folder in the task's layout; None = the synthesized corpus
    protocol: str = "lists"  # "lists" (validation_list/testing_list) or "superb"
    test_root: str | None = None  # superb protocol: the separate official test set
    synth_clips: int = 10000  # size of the synthesized corpus when root is None
    augment: bool = True  # training-time noise, shift and gain
    snr_db: tuple[float, float] = (0.0, 20.0)
    train_limit: int | None = None  # use at most this many training clips (quick runs)
    eval_limit: int | None = None  # ... and validation clips
    test_limit: int | None = None  # ... and test clips (a seeded subset: demos, not figures)
    # folder names of the fitting, validation and test splits, for layouts whose split is a
    # folder (LibriSpeech: e.g. [train-clean-100, dev-clean, test-clean]); None = the task's
    splits: tuple[str, str, str] | None = None


@dataclass
class UpstreamConfig:
    name: str = "whisper-tiny.en"
    finetune: bool = False  # SUPERB default: frozen


@dataclass
class DownstreamConfig:
    proj_dim: int = 256


HEAD_SCOPES = ("encoder", "decoder", "all")


@dataclass
class HeadsConfig:
    stats_clips: int = 1000  # training clips for each head's context mean/std (Welford)
    fill: str = "mean"  # what a removed head passes on: its training mean, or "zero"
    # which heads: the encoder's self-attention; or (asr, Whisper) the decoder's self- and
    # cross-attention heads, or both (docs/asr.md "Decoder heads")
    scope: str = "encoder"

    def __post_init__(self) -> None:
        if self.scope not in HEAD_SCOPES:
            raise ConfigError(
                f"config key 'heads.scope': {self.scope!r} is not one of {', '.join(HEAD_SCOPES)}"
            )


@dataclass
class RefitConfig:
    """Re-fitting the task head on a pruned model: cached features of augmented train clips."""

    clips: int = 2000
    epochs: int = 5
    lr: float = 1e-3


PRECISIONS = ("auto", "float32", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class EvalConfig:
    """Forwards of the frozen model without gradients: accuracy, and the features a re-fit
    caches. Never those that train the model, fit a method, score heads or fit head stats."""

    # "auto": bfloat16 autocast where this CPU runs it faster (native bf16, confirmed by a
    # measurement cached per machine), else float32 (hib.precision)
    precision: str = "auto"
    cache_gb: float = 2.0  # memory for the unmasked layer inputs of evaluation sets (layer_cache)
    batch_size: int | None = None  # clips per evaluation forward; None = the task's default

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"config key 'eval.precision': {self.precision!r} is not one of "
                f"{', '.join(PRECISIONS)}"
            )
        if self.cache_gb < 0:
            raise ConfigError(f"config key 'eval.cache_gb': {self.cache_gb} must be >= 0")


@dataclass
class TrainConfig:
    epochs: int = 4
    batch_size: int = 64
    lr: float = 1e-3
    upstream_lr: float = 1e-5  # used only with upstream.finetune
    weight_decay: float = 0.0
    steps_per_epoch: int | None = None  # None = one pass over the training split
    num_threads: int | None = None  # torch CPU threads; None = torch default


@dataclass
class Config:
    seed: int = DEFAULT_SEED
    task: str = "ks"  # hib.tasks: ks, asr, or a registered task of your own
    data: DataConfig = field(default_factory=DataConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    downstream: DownstreamConfig = field(default_factory=DownstreamConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    refit: RefitConfig = field(default_factory=RefitConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # where training, evaluation, scoring and pruning compute: "auto" = cuda when torch sees a
    # GPU, else cpu (hib.device); "cuda" on a machine without one is refused when a command
    # starts, so a run folder written on a GPU machine still loads elsewhere
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(
                f"config key 'device': {self.device!r} is not one of {', '.join(DEVICES)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(obj: Any) -> Any:
    """Tuples -> lists, recursively, so the dict is YAML/JSON friendly."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against the field's type hint; accept ints for floats, lists for tuples."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key '{key}': {value!r} is not a valid {hint}")
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"config key '{key}': expected a list of {len(args)}, got {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and isinstance(value, hint):
        return value
    name = getattr(hint, "__name__", hint)
    raise ConfigError(f"config key '{key}': expected {name}, got {value!r}")


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(_unknown_key(prefix + str(key), [prefix + n for n in names]))
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, prefix + key + ".")
        else:
            kwargs[key] = _coerce(value, hint, prefix + key)
    return cls(**kwargs)


def _unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
    return f"unknown config key '{key}'{hint}"


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config override '{dotted}': '{part}' is not a section")
    node[last] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """['train.lr=3e-4', 'data.root=/x'] -> nested dict; values parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
    return tree


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts merge key by key; any other value in `update` replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def packaged_config(name: str) -> Path:
    """A config shipped with the package, by name ("demo", "paper/ks-wav2vec2-base"): the
    files of src/hib/configs, linked as configs/, so a pip install has them too."""
    return Path(str(files("hib") / "configs" / f"{name}.yaml"))


def config_file(spec: str | Path) -> Path:
    """A YAML file by path, else a packaged config by name; ConfigError when neither exists."""
    path = Path(spec)
    if path.is_file():
        return path
    if not path.suffix and not path.is_absolute() and packaged_config(str(spec)).is_file():
        return packaged_config(str(spec))
    raise ConfigError(
        f"config file not found: {path} (nor a packaged name like paper/ks-wav2vec2-base)"
    )


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML file (a path, or a packaged config's name) <- dotted overrides,
    validated against the dataclasses."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = config_file(path)
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping of config sections at the top")
    tree = deep_merge(tree, parse_overrides(overrides or []))
    return _build(Config, tree)


def config_from_dict(tree: dict[str, Any]) -> Config:
    return _build(Config, tree)


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
