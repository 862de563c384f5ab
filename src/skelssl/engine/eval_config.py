"""Typed settings of the evaluation protocols (the ``eval`` section of a recipe, :class:`EvalConfig`).

The published protocols differ in optimiser, schedule, epochs and input handling; each is a named
preset, and a recipe or the command line picks one and overrides single fields::

    eval:
      input: {frames: 64}          # the encoder's input length (crop-resize), null for whole sequences
      linear: {preset: isc}        # ISC: SGD 0.1, 80 epochs, x0.1 at 50/70, crop 50-100 %, centre 95 %
      finetune: {preset: hitrs, epochs: 70}

    skelssl eval linear RUN --protocol nucla-xview linear.epochs=30 input.frames=50

A preset is named after the method whose paper's protocol it is, and lives beside that method
(``LINEAR_PRESET``, ``FINETUNE_PRESET`` in ``methods/<name>.py``, registered with it: ``isc``,
``hitrs``, ``mamp``; docs/isc.md, docs/hitrs.md, docs/mamp.md); fine-tuning also has ``default``
(AdamW 1e-3 cosine). ``preset: null`` starts from the field defaults of :class:`ClassifierTaskConfig`.

The presets are applied when an ``eval`` section is read, by the one config mechanism of
:mod:`skelssl.engine.config` (:func:`~skelssl.engine.config.load_eval_config`; a run's
``RunConfig.eval`` is read so when its recipe loads). ``EvalConfig()`` itself holds the bare field
defaults, no preset applied.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from skelssl.engine.optim_config import OptimConfig, ScheduleConfig

__all__ = [
    "InputConfig",
    "ClassifierTaskConfig",
    "KnnTaskConfig",
    "SemiTaskConfig",
    "TsneTaskConfig",
    "DetectTaskConfig",
    "PredictTaskConfig",
    "EvalConfig",
    "ProbeConfig",
    "BaselinesConfig",
    "DEFAULT_FINETUNE_PRESET",
    "presets",
]


@dataclass
class InputConfig:
    """How sequences are fed to the encoder at evaluation time.

    Attributes:
        frames: fixed input length by temporal crop-resize (ISC 64, MAMP 120); ``None`` feeds whole
            sequences (zero-padded, with lengths), as Hi-TRS does.
        train_crop: crop ratio range of the training crops (ISC/MAMP 0.5-1).
        test_centre: centre crop kept at test time (ISC/MAMP 0.95).
        min_frames: crop floor in frames (sequences shorter than it are used whole).
        max_frames: longer sequences are evenly subsampled to this before anything else.
        rotate: random rotation (radians, per axis) of training crops (MAMP 0.3); 0 for none.
    """

    frames: int | None = None
    train_crop: list[float] = field(default_factory=lambda: [0.5, 1.0])
    test_centre: float = 0.95
    min_frames: int = 64
    max_frames: int | None = 300
    rotate: float = 0.0


@dataclass
class ClassifierTaskConfig:
    """A classifier on the encoder, trained by the one engine loop (linear probe or fine-tuning).

    Attributes:
        preset: named defaults (see the module docstring); explicit fields override them.
        epochs, batch_size: as the protocol says.
        optim, schedule: as in a pre-training recipe.
        head: ``linear``, ``linear_bn`` (non-affine BatchNorm first, MAMP's probe) or ``mlp`` (MAMP's
            fine-tune head).
        label_smoothing, dropout: classifier regularisation (dropout on the pooled feature).
        layer_decay: layer-wise lr decay for transformer encoders that expose their depth (MAMP 0.8).
        grad_clip: gradient-norm clip.
        accumulate: micro-batches per optimiser step.
        seed: the seed of this evaluation (head init, sample order, augmentation).
        cache_features: linear probe only: extract the frozen features once (test-time input, no
            augmentation) and train the head on them; much faster, but not the published protocols,
            which crop randomly every epoch.
        encoder: encoder arguments this task overrides, none of which may change a weight's shape
            (MAMP's fine-tuning: ``{pool: joints}``, its head reads the 25 per-joint features).
        probe: linear evaluation only: ``robust`` (the default: standardised frozen features, L-BFGS
            logistic regression, regularisation by cross-validation on the training split; see
            ``eval.probe``) or ``sgd`` (the preset's published protocol: a head trained by the loop,
            with the robust probe on the same frozen features reported beside it).
    """

    preset: str | None = None
    epochs: int = 30
    batch_size: int = 64
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="sgd", lr=0.1, momentum=0.9))
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(name="cosine"))
    head: Literal["linear", "linear_bn", "mlp"] = "linear"
    label_smoothing: float = 0.0
    dropout: float = 0.0
    layer_decay: float | None = None
    grad_clip: float | None = None
    accumulate: int = 1
    seed: int = 0
    cache_features: bool = False
    encoder: dict[str, Any] = field(default_factory=dict)
    probe: Literal["robust", "sgd"] = "robust"


@dataclass
class KnnTaskConfig:
    """kNN on frozen features: ``k = 1`` cosine is ISC's retrieval protocol; ``k = 20`` is weighted.

    Attributes:
        ks: the neighbour counts to report; the first is the headline (``final``).
        weighting: vote weighting for ``k > 1``: ``exp`` (exp(sim / temperature)), ``uniform``, ``distance``.
        temperature: of the ``exp`` weighting.
        batch_size: feature-extraction batch.
    """

    ks: list[int] = field(default_factory=lambda: [1, 20])
    weighting: Literal["exp", "uniform", "distance"] = "exp"
    temperature: float = 0.07
    batch_size: int = 128


@dataclass
class SemiTaskConfig:
    """Fine-tuning on the store's saved label-fraction subsets, several subset seeds."""

    fractions: list[float] = field(default_factory=lambda: [0.01, 0.1])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])


@dataclass
class TsneTaskConfig:
    method: Literal["tsne", "pca"] = "tsne"
    max_points: int = 3000
    batch_size: int = 128


@dataclass
class DetectTaskConfig:
    """Temporal action detection on untrimmed sequences (PKU-MMD protocol; ``skelssl eval detect``).

    Windows of ``window`` frames every ``stride`` frames are encoded (frozen: once, cached), a head
    classifies each into the store's classes plus background, the window probabilities are averaged
    per frame, runs of frames given the same action become segments (confidence: its mean
    probability) and interval-level mAP is measured at ``iou_thresholds`` (:mod:`skelssl.evaluation.detection`).
    ``eval.input`` does not apply: the windows are cut at the recorded frame rate.

    Attributes:
        window, stride: window length and step in frames (PKU-MMD, 30 fps: instances last 42-134
            frames, 10th-90th percentile, median 79, on the shared subset).
        train_stride: step of the training windows (denser windows are more samples); ``None`` =
            ``stride``.
        label_rule: window label from the per-frame labels: ``majority`` or ``centre`` frame.
        finetune: train the encoder with the head (on the windows, every epoch) instead of a head on
            frozen, cached features.
        head: ``linear`` (after a non-affine BatchNorm: frozen features of a random or lightly trained
            encoder vary little around a large mean) or ``mlp`` (Linear -> BatchNorm -> ReLU ->
            Linear of ``hidden_dim``).
        hidden_dim: the MLP head's width.
        epochs, batch_size, optim, schedule, grad_clip, seed: the head's (or fine-tuning's) training.
        action_threshold: a frame is an action frame when ``1 - p(background)`` reaches it, and its
            action is the most probable one (``null``: the arg-max over all classes, background
            included; with 51 classes that misses frames whose action probability is split among
            similar classes: on the PKU-MMD subset with a random-init Hi-TRS, 24 detections and
            4.6 mAP@0.5 against 130 and 6.2 with 0.5).
        min_length: predicted segments shorter than this many frames are dropped.
        iou_thresholds: the tIoU thresholds of the reported mAP (the headline is 0.5).
        picture: draw predicted against true segments for one test sequence (``timeline.png``).
    """

    window: int = 64
    stride: int = 16
    train_stride: int | None = None
    label_rule: Literal["majority", "centre"] = "majority"
    finetune: bool = False
    head: Literal["linear", "mlp"] = "mlp"
    hidden_dim: int = 256
    epochs: int = 30
    batch_size: int = 64
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-4))
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(name="cosine", warmup_epochs=1.0))
    grad_clip: float | None = None
    seed: int = 0
    action_threshold: float | None = 0.5
    min_length: int = 8
    iou_thresholds: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7])
    picture: bool = True


@dataclass
class PredictTaskConfig:
    """Motion prediction from frozen encoder features (``skelssl eval predict``).

    Windows of ``observe + max(horizons)`` frames every ``stride`` frames; the encoder sees the first
    ``observe``, a residual MLP decoder predicts the rest (:mod:`skelssl.evaluation.prediction`), and
    MPJPE is reported at each horizon beside the zero-velocity baseline. N-UCLA clips are 39 frames
    on average, hence 20 observed and up to 10 predicted by default. ``eval.input`` does not apply.

    Attributes:
        observe: observed frames ``T_obs``.
        horizons: future frames (1 = the first predicted frame) at which MPJPE is reported; the
            decoder predicts ``max(horizons)`` frames.
        stride: frames between window starts in a sequence.
        hidden_dim, layers, dropout: the decoder MLP. On N-UCLA (3,819 training windows) the
            decoder overfits after ~10 epochs without dropout; with 0.3 and 20 epochs the test MPJPE
            of a CPU-pre-trained Hi-TRS settles at 0.159 m (random init 0.175, zero-velocity 0.167).
        loss: ``mpjpe``, ``mse`` or ``l1``.
        epochs, batch_size, optim, schedule, seed: the decoder's training.
        gif: write ``prediction.gif`` (observed, true and predicted motion) for one test window.
    """

    observe: int = 20
    horizons: list[int] = field(default_factory=lambda: [2, 4, 8, 10])
    stride: int = 5
    hidden_dim: int = 256
    layers: int = 2
    dropout: float = 0.3
    loss: Literal["mpjpe", "mse", "l1"] = "mpjpe"
    epochs: int = 20
    batch_size: int = 64
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-4))
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(name="cosine"))
    seed: int = 0
    gif: bool = True


@dataclass
class ProbeConfig:
    """The robust linear probe (:func:`skelssl.evaluation.probe.robust_probe`).

    Attributes:
        cs: inverse L2 strengths tried by cross-validation.
        folds: stratified folds on the training split (fewer when a class is smaller).
        max_iter: L-BFGS iterations.
        seed: of the fold assignment.
    """

    cs: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0])
    folds: int = 5
    max_iter: int = 1000
    seed: int = 0


@dataclass
class BaselinesConfig:
    """The baselines computed beside every frozen-feature result (same store, split, input).

    Attributes:
        raw_input: kNN and the robust probe on the flattened, cropped and resized joint coordinates.
        random_init: kNN and the robust probe on the same encoder architecture with random weights
            (skipped when the evaluated encoder is itself random).
        raw_max_dim: the raw features' length cap (``frames * C * V * M``): fewer frames when over it.
    """

    raw_input: bool = True
    random_init: bool = True
    raw_max_dim: int = 4096


@dataclass
class EvalConfig:
    """The ``eval`` section of a recipe (and of ``skelssl eval`` overrides)."""

    input: InputConfig = field(default_factory=InputConfig)
    knn: KnnTaskConfig = field(default_factory=KnnTaskConfig)
    # ISC's linear protocol is the default preset: the field default here is the one place it is said.
    linear: ClassifierTaskConfig = field(default_factory=lambda: ClassifierTaskConfig(preset="isc"))
    finetune: ClassifierTaskConfig = field(default_factory=lambda: ClassifierTaskConfig(preset="default"))
    semi: SemiTaskConfig = field(default_factory=SemiTaskConfig)
    tsne: TsneTaskConfig = field(default_factory=TsneTaskConfig)
    detect: DetectTaskConfig = field(default_factory=DetectTaskConfig)
    predict: PredictTaskConfig = field(default_factory=PredictTaskConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    num_workers: int = 0


# The fine-tuning preset of methods without their own (a method's presets are registered with it:
# ``LINEAR_PRESET`` and ``FINETUNE_PRESET`` in ``methods/<name>.py``).
DEFAULT_FINETUNE_PRESET: dict[str, Any] = {
    "epochs": 50, "batch_size": 32, "head": "linear",
    "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
    "schedule": {"name": "cosine", "warmup_epochs": 2, "min_lr": 1e-5},
}


def presets(task: Literal["linear", "finetune"]) -> dict[str, dict[str, Any]]:
    """The named presets of ``eval.<task>.preset``: the registered methods' (by method name), and for
    fine-tuning ``default``."""
    from skelssl.methods import eval_presets

    named = eval_presets(task)
    return {"default": copy.deepcopy(DEFAULT_FINETUNE_PRESET), **named} if task == "finetune" else named
