"""Typed schemas for every Hydra config group, and validation that runs before anything trains.

Each group under ``conf/`` (vision, image, projector, llm, recipe, data, train, eval, launcher, tracking,
runtime) has one dataclass here, registered in Hydra's ConfigStore so that a wrong type or an unknown key in
a YAML file fails at compose time.  ``validate`` then checks values and cross-axis combinations and raises
``ConfigError`` with one line naming the key, the bad value and what is allowed.

Nothing in this module imports torch: the CLI's dry runs and ``--help`` stay fast.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
# torch.distributed timeout (rendezvous, collectives, barriers) of multi-task jobs: runtime.dist_timeout_s.
DIST_TIMEOUT_S = 1800

# Axis groups: config groups whose chosen option is a design axis (their `id` is the level).
AXIS_GROUPS = ("vision", "image", "projector", "llm", "recipe", "data")
# Every config group under conf/ (axis groups + the rest).
ALL_GROUPS = (*AXIS_GROUPS, "train", "eval", "launcher", "tracking", "runtime")


class ConfigError(ValueError):
    """A config value or combination is invalid; the message is one line naming key, value and allowed."""


# ----------------------------------------------------------------------------------------------- vision
@dataclass
class BackboneConfig:
    """One ViT branch of a (possibly fused) vision backbone."""

    family: str = MISSING  # a vision family of ablate.registry.VISION_FAMILIES (`ablate list vision-families`)
    arch: str = MISSING  # architecture name inside the family (open_clip model name, timm name, HF id)
    pretrained: str | None = None  # weights tag (e.g. "openai", "webli", "lvd142m"); None = random init
    # local weights dir/file; None = local HF/open_clip cache (never downloaded).  A path, so not part of the
    # run identity (as llm.path): the tag says which weights
    path: str | None = None
    image_size: int = 224
    patch_size: int = 14
    width: int = 1024  # feature dim D of the patch features
    depth: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    mean: list[float] = field(default_factory=lambda: [0.48145466, 0.4578275, 0.40821073])
    std: list[float] = field(default_factory=lambda: [0.26862954, 0.26130258, 0.27577711])
    # which block's output is used: -2 = second-to-last (Prismatic); CLS/register tokens are dropped.
    feature_layer: int = -2
    num_prefix_tokens: int = 1  # CLS (+ registers) tokens to drop
    # the MLP activation the weights were trained with: quick_gelu (OpenAI CLIP), gelu (exact), gelu_tanh
    # (SigLIP); built as configured, never inferred from the arch name (docs/fidelity.md)
    activation: str = "gelu"


@dataclass
class VisionConfig:
    id: str = MISSING
    backbones: list[BackboneConfig] = field(default_factory=list)
    image_size: int = 224  # input resolution S every branch is fed


# ------------------------------------------------------------------------------------------------ image
@dataclass
class ImageConfig:
    id: str = MISSING  # resize-naive | letterbox | resize-crop | anyres (the level: the file name)
    # the registered transform when the level is a variant of one (anyres-small -> anyres); None = ``id``
    transform: str | None = None
    # anyres: the tile grids it picks from by aspect ratio, "CxR" = C tiles wide, R high (ablate.data.anyres)
    grids: list[str] | None = None


# -------------------------------------------------------------------------------------------- projector
@dataclass
class ProjectorConfig:
    id: str = MISSING  # a projector of ablate.registry.PROJECTORS
    num_tokens: int | None = None  # resamplers: number of learned queries (output tokens); None otherwise
    depth: int = 2  # resamplers: number of cross-attention / query-transformer layers
    heads: int = 8
    hidden_mult: int = 4  # fused-mlp: first hidden width = hidden_mult * input width
    xattn_every: int | None = None  # gated-xattn: a gated cross-attention block before every k-th LM layer


# -------------------------------------------------------------------------------------------------- llm
@dataclass
class LLMSpec:
    """The architecture of a named LM as data (HF config names): enough to build it on the meta device with no
    weights or tokenizer, and checked against the config of the weights when they load."""

    model_type: str = MISSING  # HF model_type: llama | mistral | phi | ...
    hidden_size: int = MISSING
    intermediate_size: int = MISSING
    num_hidden_layers: int = MISSING
    num_attention_heads: int = MISSING
    num_key_value_heads: int = MISSING
    vocab_size: int = MISSING  # rows of the shipped embedding (before PAD is added and the multiple-of-64 resize)
    tokenizer_size: int | None = None  # len() of the shipped tokenizer where it differs from vocab_size (Phi-2)
    rope_theta: float = 10000.0
    max_position_embeddings: int = MISSING
    weights_dtype: str = MISSING  # the dtype the checkpoint ships in: float16 | bfloat16 | float32
    tie_word_embeddings: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # other HF config keys of the family (eps, act, ...)


@dataclass
class LLMConfig:
    id: str = MISSING
    family: str = "llama"  # llama | mistral | phi | qwen2 ...: HF model_type of the causal LM
    hf_id: str | None = None  # HF hub id resolved in the local cache only (HF_HUB_OFFLINE)
    path: str | None = None  # local directory with config + weights + tokenizer; wins over hf_id
    prompt_format: str = "base"  # a prompt format of ablate.registry.PROMPT_FORMATS
    chat: bool = False  # instruction-tuned (chat) LM vs base LM: a readable axis level
    # random init from this HF config (small test LMs); None = load weights from path/hf_id.  Setting it
    # together with llm.path is an error (one of them says where the LM comes from)
    random_init: dict[str, Any] | None = None
    # the architecture of the weights behind hf_id/path (required for named LMs; random-init LMs: random_init)
    spec: LLMSpec | None = None
    # PAD token added to the tokenizer (as Prismatic: "<PAD>" for Llama/Mistral, "<|pad|>" for Phi-2, always);
    # None = add "<pad>" only when the tokenizer has none
    pad_token: str | None = None
    tokenizer: str | None = None  # an in-process tokenizer of ablate.registry.TOKENIZERS; None = from weights
    image_positions: str = "1d"  # 1d | m-rope (alias rope-2d) | mrope-interleave | rope-tie | rope-tv
    max_length: int = 2048
    pad_to_multiple_of: int = 64


# ----------------------------------------------------------------------------------------------- recipe
@dataclass
class StagePlan:
    name: str = MISSING  # align | finetune | full-finetune
    trainable: list[str] = field(default_factory=list)  # of: projector, llm, vision
    data: str = "finetune"  # align | finetune: which split of the data mix feeds the stage


@dataclass
class LoraConfig:
    """LoRA adapters on the LLM (``ablate.train.lora``), merged into the final model."""

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                               "gate_proj", "up_proj", "down_proj"])


@dataclass
class RecipeConfig:
    id: str = MISSING
    stages: list[StagePlan] = field(default_factory=list)
    lora: LoraConfig | None = None  # LoRA on the stages that train the llm (the last one only)


# ------------------------------------------------------------------------------------------------- data
@dataclass
class DataSource:
    name: str = MISSING  # readable name, e.g. "llava-v15-665k"
    json: str = MISSING  # path relative to data root
    images: str = "."  # image folder relative to data root


@dataclass
class DataConfig:
    id: str = MISSING
    root: str = "data"  # data root (a path: not part of the run identity)
    align: list[DataSource] = field(default_factory=list)
    finetune: list[DataSource] = field(default_factory=list)
    cotraining: bool = True  # keep language-only examples in finetune
    on_bad_example: str = "skip"  # skip | fail
    # images with more pixels are bad examples (named, then skipped or failed by on_bad_example); null = no
    # limit.  Not part of the run identity (a safety limit; what it skipped is counted in data_stats.json)
    max_image_pixels: int | None = 40_000_000  # = ablate.data.untrusted.DEFAULT_MAX_IMAGE_PIXELS
    # {size, seed} of a generated data root (the shapes world: `ablate data synth`, `ablate demo`); the core
    # never generates data, it only reads root
    synthetic: dict[str, Any] | None = None


# ------------------------------------------------------------------------------------------------ train
@dataclass
class StageHParams:
    lr: float = 2e-5
    weight_decay: float = 0.1
    global_batch: int = 128
    per_device_batch: int = 16
    epochs: float | None = None  # None = train.epochs
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    # Prismatic's {align,finetune}_max_steps: the stage's step budget and schedule length (overrides epochs)
    max_steps: int | None = None


@dataclass
class TrainConfig:
    epochs: float = 1.0  # finetune epochs; fractional = step budget
    max_steps: int | None = None  # cap per stage (tests/demo)
    seed: int = 7
    align: StageHParams = field(
        default_factory=lambda: StageHParams(lr=1e-3, weight_decay=0.0, global_batch=256, epochs=1.0)
    )
    finetune: StageHParams = field(default_factory=StageHParams)
    precision: str = "bf16"  # bf16 | fp32 (compute dtype of trained parts)
    frozen_vision_dtype: str = "bf16"
    activation_checkpointing: bool = True
    sharding: str = "full"  # full | grad-op | none
    group_by_modality_length: bool = True


# ------------------------------------------------------------------------------------------------- eval
@dataclass
class EvalConfig:
    id: str = MISSING
    root: str = "data/eval"  # benchmark data root (a path)
    benchmarks: list[str] = field(default_factory=list)
    limit: int | None = None  # fixed-seed subset size per benchmark
    subset_seed: int = 0
    closed_set: str = "prob"  # prob (option probabilities, as Prismatic) | generate (generate + parse)
    max_new_tokens: int = 128
    batch_size: int = 16
    precision: str = "bf16"  # bf16 (Prismatic evaluates under bf16 autocast) | fp32; master weights stay fp32


# ------------------------------------------------------------------------------------- launcher/tracking
@dataclass
class LauncherConfig:
    id: str = MISSING  # local | slurm | debug
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 60 * 24
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int = 1
    cpus_per_task: int = 1
    mem_gb: float | None = None
    array_parallelism: int = 64
    max_requeues: int = 3
    signal_delay_s: int = 120
    extra: dict[str, Any] = field(default_factory=dict)  # extra sbatch parameters
    setup: list[str] = field(default_factory=list)  # shell lines run before the job


@dataclass
class TrackingConfig:
    id: str = MISSING
    uri: str = "sqlite:///runs/mlflow.db"
    artifact_root: str = "runs/mlflow-artifacts"


@dataclass
class RuntimeConfig:
    """Operational settings: never part of a run's identity."""

    runs_dir: str = "runs"
    log_every: int = 10
    checkpoint_every: int = 200
    keep_last: int = 2
    num_workers: int = 0  # DataLoader workers decoding + transforming + collating (0: the training process)
    pixel_cache_mb: float = 256  # preprocessed pixels kept per dataset (ablate.data.pixel_cache)
    checkpoint_format: str = "auto"  # auto (sharded under FSDP, else full) | sharded | full
    compile: bool = False  # torch.compile each vision block and decoder layer
    device: str = "auto"  # auto | cpu | cuda
    progress: bool = True
    # seconds a rank of a multi-task job waits in init_process_group / a collective for the others before it
    # fails (a rank that died or never joined); torch defaults to 30 min for gloo, 10 min for NCCL
    dist_timeout_s: float = DIST_TIMEOUT_S


@dataclass
class AblateConfig:
    study: str = "adhoc"
    # plug-in modules imported before composing (ablate.registry.load_plugins); not part of the run identity
    plugins: list[str] = field(default_factory=list)
    vision: VisionConfig = MISSING
    image: ImageConfig = MISSING
    projector: ProjectorConfig = MISSING
    llm: LLMConfig = MISSING
    recipe: RecipeConfig = MISSING
    data: DataConfig = MISSING
    train: TrainConfig = MISSING
    eval: EvalConfig = MISSING
    launcher: LauncherConfig = MISSING
    tracking: TrackingConfig = MISSING
    runtime: RuntimeConfig = MISSING


def register_configs() -> None:
    """Register the typed top-level schema in Hydra's ConfigStore; conf/config.yaml lists it first in its
    defaults, so every group file merges into its group's dataclass (unknown keys and wrong types fail)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="ablate_schema", node=AblateConfig)


# ------------------------------------------------------------------------------------------- validation
RESAMPLERS = ("perceiver", "qformer")
ACTIVATIONS = ("gelu", "quick_gelu", "gelu_tanh", "none")
WEIGHT_DTYPES = ("float16", "bfloat16", "float32")
IMAGE_POSITIONS = ("1d", "m-rope", "rope-2d", "mrope-interleave", "rope-tie", "rope-tv")  # built by ablate.models.positions
POSITION_ALIASES = {"rope-2d": "m-rope"}  # old ID -> level; run keys hash the old spelling (design.science_dict)
ROPE_2D_FAMILIES = ("llama", "mistral", "qwen2")
STAGE_NAMES = ("align", "finetune", "full-finetune")
COMPONENTS = ("projector", "llm", "vision")


# Strings that reach the sbatch script (one ``#SBATCH --key=value`` line each): a newline there would start a
# shell line, so they are held to SLURM's own name syntax before anything is submitted (docs/reliability.md).
SLURM_NAME = re.compile(r"[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*", re.ASCII)  # partition / account / qos (lists)
SLURM_NAME_ALLOWED = "letters, digits, '_', '.', '+', '-' (comma-separated list)"
SBATCH_KEY = re.compile(r"[a-z][a-z0-9_-]*", re.ASCII)
SBATCH_VALUE = re.compile(r"[A-Za-z0-9_.,:=@%+/*&|!<>()\[\]-]*", re.ASCII)
SBATCH_VALUE_ALLOWED = "letters, digits and _.,:=@%+/*&|!<>()[]- (no spaces, quotes, '$', ';' or control characters)"


def check_launcher_strings(launcher: Any) -> None:
    """Every launcher string that ends up in the sbatch script, against a strict pattern (one-line error)."""
    for key in ("partition", "account", "qos"):
        value = launcher.get(key) if hasattr(launcher, "get") else getattr(launcher, key, None)
        if value is not None and not SLURM_NAME.fullmatch(str(value)):
            raise ConfigError(f"launcher.{key}: invalid value {str(value)!r}; allowed: {SLURM_NAME_ALLOWED}")
    extra = launcher.get("extra") if hasattr(launcher, "get") else getattr(launcher, "extra", None)
    for key, value in dict(extra or {}).items():
        if not SBATCH_KEY.fullmatch(str(key)):
            raise ConfigError(f"launcher.extra: invalid key {str(key)!r}; allowed: an sbatch option name "
                              "(lower-case letters, digits, '_', '-')")
        if not isinstance(value, bool | int | float) and not SBATCH_VALUE.fullmatch(str(value)):
            raise ConfigError(f"launcher.extra.{key}: invalid value {str(value)!r}; allowed: {SBATCH_VALUE_ALLOWED}")


def _allowed(key: str, value: Any, allowed: tuple | list) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: invalid value {value!r}; allowed: {', '.join(map(str, allowed))}")


def _check(cond: bool, key: str, value: Any, expected: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: invalid value {value!r}; expected {expected}")


def dist_timeout_s(cfg: Any) -> float:
    """``runtime.dist_timeout_s`` of a config (configs saved before the key existed: the default)."""
    runtime = cfg.get("runtime") if hasattr(cfg, "get") else None
    value = runtime.get("dist_timeout_s") if runtime is not None and hasattr(runtime, "get") else None
    return float(DIST_TIMEOUT_S if value is None else value)


def parse_grids(grids: Sequence[str], where: str = "image.grids") -> list[tuple[int, int]]:
    """``["2x1", ...]`` -> ``[(2, 1), ...]`` (columns, rows); a one-line error for anything else."""
    out = []
    if not grids:
        raise ConfigError(f"{where}: invalid value {grids!r}; expected grid shapes 'CxR' (columns x rows), e.g. [2x1]")
    for g in grids:
        m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", str(g))
        if m is None or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise ConfigError(f"{where}: invalid grid shape {g!r}; expected 'CxR' with C, R >= 1 (e.g. '2x1')")
        out.append((int(m.group(1)), int(m.group(2))))
    return out


def image_transform_id(image: Any) -> str:
    """The registered image transform of an ``image`` config: ``transform``, else its ``id``."""
    return str(image.get("transform") or image.id)


def _check_image(image: Any, projector: str, positions: str) -> None:
    """``image.grids`` belongs to (well-formed) ``anyres``, which needs per-patch image tokens, 1-D positions."""
    grids = image.get("grids")
    if image_transform_id(image) != "anyres":
        _check(grids is None, "image.grids", grids, f"null for image={image.id} (only anyres tiles)")
        return
    parse_grids(list(grids) if grids is not None else [], "image.grids")
    _check(projector not in (*RESAMPLERS, "gated-xattn"), "projector", projector,
           "a patch-wise projector (linear, mlp, fused-mlp) for image=anyres (its tokens are laid out per patch)")
    _check(positions == "1d", "llm.image_positions", positions, "1d for image=anyres (no 2-D layout of tiles)")


def validate(cfg: Any) -> None:
    """Check values and cross-axis combinations of a composed config; raise ConfigError (one line).  Component
    IDs are checked against their registries (``ablate.registry``: the built-ins and the plug-ins')."""
    from ablate import registry as r

    r.load_plugins(cfg.get("plugins") or ())
    v = cfg.vision
    _check(len(v.backbones) >= 1, "vision.backbones", list(v.backbones), "at least one backbone")
    grids = set()
    for i, b in enumerate(v.backbones):
        r.VISION_FAMILIES.check(b.family, f"vision.backbones[{i}].family")
        _allowed(f"vision.backbones[{i}].activation", b.activation, ACTIVATIONS)
        _check(b.image_size == v.image_size, f"vision.backbones[{i}].image_size", b.image_size,
               f"{v.image_size} (the backbone's resolution vision.image_size; {v.id} supports only that)")
        grids.add(v.image_size // b.patch_size)
    _check(len(grids) == 1, "vision.backbones", v.id, f"branches with one patch grid, got grids {sorted(grids)}")
    r.IMAGE_TRANSFORMS.check(image_transform_id(cfg.image), "image" if cfg.image.get("transform") is None
                             else "image.transform")
    p = cfg.projector
    r.PROJECTORS.check(p.id)
    _check_image(cfg.image, p.id, str(cfg.llm.image_positions))
    fused = len(v.backbones) > 1
    if p.id == "fused-mlp" and not fused:
        raise ConfigError(f"projector: invalid value 'fused-mlp' for single backbone vision={v.id!r}; "
                          f"allowed: {', '.join(n for n in r.PROJECTORS.names() if n != 'fused-mlp')}")
    if p.id in RESAMPLERS:
        _check(p.num_tokens is not None and p.num_tokens > 0, "projector.num_tokens", p.num_tokens,
               f"a positive number of learned queries for projector={p.id}")
    elif p.id == "gated-xattn":
        _check(p.num_tokens is None, "projector.num_tokens", p.num_tokens, "null for projector=gated-xattn")
        _check(p.xattn_every is not None and p.xattn_every > 0, "projector.xattn_every", p.xattn_every,
               "a positive layer interval for projector=gated-xattn")
    elif p.num_tokens is not None:
        raise ConfigError(f"projector.num_tokens: invalid value {p.num_tokens!r}; "
                          f"expected null for projector={p.id} (only perceiver/qformer resample)")

    llm = cfg.llm
    r.PROMPT_FORMATS.check(llm.prompt_format)
    if llm.get("tokenizer") not in (None, ""):
        r.TOKENIZERS.check(llm.tokenizer)
    _allowed("llm.image_positions", llm.image_positions, IMAGE_POSITIONS)
    if llm.image_positions != "1d":
        _check(llm.family in ROPE_2D_FAMILIES, "llm.image_positions", llm.image_positions,
               f"an LLM of family {'/'.join(ROPE_2D_FAMILIES)}, got llm={llm.id} ({llm.family})")
        _check(p.id not in (*RESAMPLERS, "gated-xattn"), "llm.image_positions", llm.image_positions,
               f"a projector that keeps the patch grid, got projector={p.id}")
    _check(llm.path is not None or llm.hf_id is not None or llm.random_init is not None, "llm", llm.id,
           "one of llm.path, llm.hf_id or llm.random_init")
    if llm.path is not None and llm.random_init is not None:
        raise ConfigError(f"llm.random_init: invalid value (set) with llm.path={llm.path!r} (llm={llm.id}); expected "
                          "one of them: random_init builds a random LM, path loads one (add llm.random_init=null)")
    _check(llm.random_init is not None or llm.spec is not None or llm.path is not None, "llm.spec", None,
           f"the architecture of llm={llm.id} (conf/llm/*.yaml spec:, checked against its weights)")
    if llm.spec is not None:
        _allowed("llm.spec.weights_dtype", llm.spec.weights_dtype, WEIGHT_DTYPES)

    stages = cfg.recipe.stages
    _check(len(stages) >= 1, "recipe.stages", list(stages), "at least one stage")
    for i, s in enumerate(stages):
        _allowed(f"recipe.stages[{i}].name", s.name, STAGE_NAMES)
        for c in s.trainable:
            _allowed(f"recipe.stages[{i}].trainable", c, COMPONENTS)
        _allowed(f"recipe.stages[{i}].data", s.data, ("align", "finetune"))
    if cfg.recipe.get("lora") is not None:
        with_llm = [i for i, s in enumerate(stages) if "llm" in s.trainable]
        _check(with_llm == [len(stages) - 1], "recipe.lora", cfg.recipe.id,
               f"a recipe whose last stage alone trains the llm (stages training llm: {with_llm})")
        _check(int(cfg.recipe.lora.rank) > 0, "recipe.lora.rank", cfg.recipe.lora.rank, "a positive rank")
    has_align = any(s.name == "align" for s in stages)
    if not has_align and cfg.train.align.epochs not in (None, 1.0):
        raise ConfigError(f"train.align.epochs: invalid value {cfg.train.align.epochs!r} for single-stage "
                          f"recipe={cfg.recipe.id}; the recipe has no align stage")
    if has_align:
        _check(len(cfg.data.align) > 0, "data.align", [], f"align sources for recipe={cfg.recipe.id}")
    for v_backbone in v.backbones:
        if v_backbone.family == "patch-embed" and any("vision" not in s.trainable for s in stages):
            raise ConfigError(f"recipe: invalid value {cfg.recipe.id!r} for vision={v.id!r}; patch-embed has "
                              "no pretrained encoder, so allowed recipes train vision in every stage")

    t = cfg.train
    _check(t.epochs > 0, "train.epochs", t.epochs, "> 0 (fractional epochs are step budgets)")
    _check(t.max_steps is None or t.max_steps >= 1, "train.max_steps", t.max_steps, ">= 1, or null (no cap)")
    for name in ("align", "finetune"):
        h = getattr(t, name)
        _check(h.lr > 0, f"train.{name}.lr", h.lr, "> 0")
        _check(h.per_device_batch >= 1, f"train.{name}.per_device_batch", h.per_device_batch, ">= 1")
        _check(h.global_batch >= 1, f"train.{name}.global_batch", h.global_batch, ">= 1")
        _check(h.epochs is None or h.epochs > 0, f"train.{name}.epochs", h.epochs, "> 0, or null (= train.epochs)")
        _check(0 <= h.warmup_ratio < 1, f"train.{name}.warmup_ratio", h.warmup_ratio, "in [0, 1)")
        _check(h.weight_decay >= 0, f"train.{name}.weight_decay", h.weight_decay, ">= 0")
        _check(h.max_grad_norm > 0, f"train.{name}.max_grad_norm", h.max_grad_norm, "> 0")
        _check(h.global_batch % h.per_device_batch == 0, f"train.{name}.global_batch", h.global_batch,
               f"a multiple of train.{name}.per_device_batch={h.per_device_batch}")
    _allowed("train.precision", t.precision, ("bf16", "fp32"))
    _allowed("train.frozen_vision_dtype", t.frozen_vision_dtype, ("bf16", "fp32"))
    _allowed("eval.precision", cfg.eval.precision, ("bf16", "fp32"))
    _allowed("train.sharding", t.sharding, ("full", "grad-op", "none"))
    _allowed("data.on_bad_example", cfg.data.on_bad_example, ("skip", "fail"))
    mp = cfg.data.get("max_image_pixels")
    _check(mp is None or mp >= 1, "data.max_image_pixels", mp, "a positive number of pixels, or null (no limit)")
    _allowed("eval.closed_set", cfg.eval.closed_set, ("prob", "generate"))
    for bench in cfg.eval.benchmarks:
        r.BENCHMARKS.check(bench)
    r.EXECUTORS.check(cfg.launcher.id)
    check_launcher_strings(cfg.launcher)
    _check(cfg.launcher.tasks_per_node >= 1, "launcher.tasks_per_node", cfg.launcher.tasks_per_node, ">= 1")
    rt, ev = cfg.runtime, cfg.eval
    for key in ("log_every", "checkpoint_every", "keep_last"):
        _check(rt[key] >= 1, f"runtime.{key}", rt[key], ">= 1")
    _check(rt.num_workers >= 0, "runtime.num_workers", rt.num_workers, ">= 0")
    _check(rt.pixel_cache_mb >= 0, "runtime.pixel_cache_mb", rt.pixel_cache_mb, ">= 0 (MiB; 0: off)")
    _check(ev.limit is None or ev.limit >= 1, "eval.limit", ev.limit, ">= 1, or null (every example)")
    _check(ev.batch_size >= 1, "eval.batch_size", ev.batch_size, ">= 1")
    _check(ev.max_new_tokens >= 1, "eval.max_new_tokens", ev.max_new_tokens, ">= 1")
    _check(cfg.llm.max_length >= 1, "llm.max_length", cfg.llm.max_length, ">= 1")
    _check(cfg.runtime.dist_timeout_s > 0, "runtime.dist_timeout_s", cfg.runtime.dist_timeout_s,
           "> 0 (seconds a rank waits for the others)")
