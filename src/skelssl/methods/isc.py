"""ISC: inter-skeleton contrastive learning (Thoker, Doughty, Snoek, "Skeleton-Contrastive 3D Action
Representation Learning", ACM MM 2021; official code ``moco/builder_inter.py``, ``builder_intra.py``).

The same clip is read as two *skeleton representations*, e.g. a sequence (GRU) and a graph (AGCN).
Each representation has a query encoder and a momentum key encoder (MoCo), each followed by a
projection to 128-d. Two augmented views of every clip are made; queries come from view 1, keys from
view 2. The loss is **cross-representation only**: the sequence query must pick out the graph key of
the same clip among the graph-key queue, and the graph query the sequence key among the sequence-key
queue:

    L = InfoNCE(q_seq, k_graph+, Queue_graph) + InfoNCE(q_graph, k_seq+, Queue_seq),   tau = 0.07.

Then both queues receive their keys. ``pairing="intra-<rep>"`` is the intra-skeleton MoCo baseline of
the paper's ablations (one representation, ``InfoNCE(q, k+, Queue)``, one queue).

Faithful to the official code: K = 16384 keys per queue, m = 0.999, keys copied from the queries at
initialisation, MLP heads ``Linear(D, D)-ReLU-Linear(D, 128)`` (``--mlp``) whose last layer is
initialised as each official encoder's ``fc``, weight decay on every parameter, the views of
``feeder_pretraining_inter.py``. Differences, and why:

- **Momentum update timing.** Officially the key encoders move once per forward, *before* the keys
  are computed. Here the engine calls :meth:`after_optimizer_step` after each optimiser step, i.e. the
  same update between the same two steps; at the very first step the official update is a no-op
  (the keys equal the queries), so the sequence of key-encoder weights is identical.
- **Data parallel.** Keys are all-gathered over processes (rank order) before they enter the queues,
  so every process holds the same queues, as in MoCo's DDP code; the official ISC used
  ``nn.DataParallel``, whose replica-side queue writes are doubtful (docs/isc.md). No shuffle-BN
  (neither has the official ISC).
- ``seq+image`` works here (the official branch calls an undefined ``GRU_model``).
- The momentum update also copies the query encoders' buffers (BatchNorm running statistics) into
  the key encoders; the key encoders only ever run in training mode, where those are not used.

Randomness: views are drawn from a CPU ``torch.Generator`` re-seeded every step from
``(run_seed, rank, step)`` (``step`` is a buffer), as :class:`~skelssl.methods.simclr.SimCLR` does; the
transforms run batched on the batch's device.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from skelssl import transforms as T
from skelssl.methods import published_rows, register_method
from skelssl.methods.base import Method, no_gather, process_rank
from skelssl.methods.losses import contrastive_loss, info_nce_logits
from skelssl.methods.moco_queue import KeyQueue
from skelssl.models import build_encoder
from skelssl.models.base import Encoder
from skelssl.models.heads import ProjectionHead

__all__ = ["ISC", "PAIRINGS", "DEFAULT_ENCODERS"]

#: Pairing name -> representations (query encoders), in order.
PAIRINGS: dict[str, tuple[str, ...]] = {
    "seq+graph": ("seq", "graph"),
    "graph+image": ("graph", "image"),
    "seq+image": ("seq", "image"),
    "intra-seq": ("seq",),
    "intra-graph": ("graph",),
    "intra-image": ("image",),
}

#: The official encoder of each representation.
DEFAULT_ENCODERS = {"seq": "gru", "graph": "agcn", "image": "hcn"}


def _context(encoder: Encoder) -> dict[str, Any]:
    """``in_channels``, ``layout`` (by name) and ``num_persons`` of a built encoder, for its partner."""
    spec_kwargs = getattr(encoder, "spec", {}).get("kwargs", {})
    out = {}
    for key in ("in_channels", "layout", "num_persons"):
        value = getattr(encoder, key, spec_kwargs.get(key))
        if value is not None:
            out[key] = getattr(value, "name", value)
    return out


@torch.no_grad()
def _official_head_init(head: ProjectionHead, rep: str) -> None:
    """Initialise the head's last linear layer as the official encoder's ``fc``.

    GRU: Xavier-uniform weight (``weights_init_gru``); AGCN: ``N(0, 2 / 128)`` weight
    (``nn.init.normal_(fc.weight, 0, sqrt(2 / num_class))``); HCN: Xavier-uniform weight, zero bias.
    The MLP's hidden layer keeps PyTorch's default, as ``--mlp`` inserts it after that init.
    """
    last = head.net if isinstance(head.net, nn.Linear) else head.net[-1]
    if rep == "graph":
        nn.init.normal_(last.weight, 0.0, (2.0 / last.out_features) ** 0.5)
    else:
        nn.init.xavier_uniform_(last.weight)
        if rep == "image":
            nn.init.zeros_(last.bias)


# -- evaluation (docs/isc.md) -------------------------------------------------------------------------
# Linear: SGD 0.1, momentum 0.9, no decay, batch 64, 80 epochs, x0.1 at 50 and 70; fine-tuning the same
# schedule from 0.01, as CMD's semi-supervised script.
LINEAR_PRESET = {
    "epochs": 80, "batch_size": 64, "head": "linear",
    "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0},
    "schedule": {"name": "multistep", "milestones": [50, 70], "gamma": 0.1},
}
FINETUNE_PRESET = {
    "epochs": 80, "batch_size": 64, "head": "linear",
    "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0},
    "schedule": {"name": "multistep", "milestones": [50, 70], "gamma": 0.1},
}
_LINEAR_REF = "fmthoker/skeleton-contrast images/results_classification.png (the paper's table)"
_KNN_REF = "fmthoker/skeleton-contrast images/results_retrieval.png (k=1)"
PUBLISHED = [
    *published_rows(
        "ISC", "linear",
        {"ntu60-xview": 85.2, "ntu60-xsub": 76.3, "ntu120-xset": 67.9, "ntu120-xsub": 67.1, "pku1-xsub": 80.9, "pku2-xsub": 36.0},
        "READ", _LINEAR_REF,
    ),
    *published_rows("ISC", "knn", {"ntu60-xview": 82.6, "ntu60-xsub": 62.5, "ntu120-xset": 52.3, "ntu120-xsub": 50.6}, "READ", _KNN_REF),
    *published_rows("ISC", "semi", {"ntu60-xsub": 70.8}, "READ", "fmthoker/skeleton-contrast issue #8 quoting the paper", label_fraction=0.2),
    *published_rows("ISC", "semi", {"ntu60-xsub": 35.7, "ntu60-xview": 38.1, "pku1-xsub": 37.7}, "RECALL", "ISC paper (unverified)",
                    label_fraction=0.01),
    *published_rows("ISC", "semi", {"ntu60-xsub": 65.9, "ntu60-xview": 72.5, "pku1-xsub": 72.1}, "RECALL", "ISC paper (unverified)",
                    label_fraction=0.1),
]


@register_method("isc", linear=LINEAR_PRESET, finetune=FINETUNE_PRESET, published=PUBLISHED)
class ISC(Method):
    """Inter-skeleton contrastive learning (and the intra-skeleton MoCo baseline).

    Args:
        encoder: query encoder of the pairing's first representation (e.g. a ``gru`` for ``seq+graph``).
        pairing: ``"seq+graph"`` (default, ISC's main model), ``"graph+image"``, ``"seq+image"``, or
            ``"intra-seq"`` / ``"intra-graph"`` / ``"intra-image"`` (one encoder, one queue).
        partner: query encoder of the second representation (inter pairings only): a built encoder,
            or a spec ``{"name": ..., "kwargs": {...}}`` as written in recipes, built with the first
            encoder's ``in_channels``, ``layout`` and ``num_persons``; default: the official encoder
            of that representation (:data:`DEFAULT_ENCODERS`) at paper size.
        export: representation whose query encoder evaluation uses (default: the first; ISC reports
            the GRU of seq+graph).
        queue_size: ``K`` keys per queue (16384); must be a multiple of the global batch. ``0``: no
            queues; each query's candidates are the other representation's keys of the current
            global batch (MoCo v3 style). Not ISC; used by the N-UCLA CPU recipe, where a queue let
            the keys collapse and the positive be found by its recency (``configs/isc/nucla_cpu.yaml``).
        momentum: key-encoder EMA coefficient ``m`` (0.999).
        temperature: InfoNCE temperature (0.07).
        proj_dim: embedding size (128).
        mlp: MLP heads (the official ``--mlp``, used by ``script_pretrain.sh``); else linear heads.
        frames: clip length after crop-resize (64).
        crop: range of the kept fraction of the real frames (pre-training: ``(0.1, 1.0)``); crops are
            at least ``frames`` long (or the whole sequence).
        shear: off-diagonal bound of the pose augmentation (ISC: 1).
        corrupt_joints: joints hit by joint corruption (ISC: 15 of 25); ``None`` = ``round(0.6 V)``.
        coords: leading input channels that are coordinates (2 or 3); later channels (a pose estimator's
            ``score``) are carried unchanged by the shear and the corruption. Default: every channel (the
            job sets it from the store's channel names).

    Attributes:
        gather: ``Tensor -> Tensor`` concatenating a tensor over data-parallel processes in rank order;
            identity by default, set by the engine for multi-process training. Keys go through it
            under ``no_grad`` before entering the queues.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        pairing: str = "seq+graph",
        partner: Encoder | dict[str, Any] | None = None,
        export: str | None = None,
        queue_size: int = 16384,
        momentum: float = 0.999,
        temperature: float = 0.07,
        proj_dim: int = 128,
        mlp: bool = True,
        frames: int = 64,
        crop: tuple[float, float] = (0.1, 1.0),
        shear: float = 1.0,
        corrupt_joints: int | None = None,
        coords: int | None = None,
    ) -> None:
        super().__init__()
        if pairing not in PAIRINGS:
            raise ValueError(f"unknown ISC pairing {pairing!r}; choose from {', '.join(PAIRINGS)}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.pairing, self.reps = pairing, PAIRINGS[pairing]
        export = export or self.reps[0]
        if export not in self.reps:
            raise ValueError(f"export={export!r} is not a representation of pairing {pairing!r} ({', '.join(self.reps)})")
        self.export_rep = export
        encoders = {self.reps[0]: encoder}
        if len(self.reps) == 2:
            encoders[self.reps[1]] = self._build_partner(encoder, partner, self.reps[1])
        elif partner is not None:
            raise ValueError(f"pairing {pairing!r} uses one encoder; remove partner")
        self.queries = nn.ModuleDict(encoders)
        heads = {}
        for rep, enc in encoders.items():
            heads[rep] = ProjectionHead(enc.out_dim, proj_dim, enc.out_dim if mlp else None)
            _official_head_init(heads[rep], rep)
        self.heads = nn.ModuleDict(heads)
        # Key encoders start as copies of the queries and never receive gradients (official builder).
        self.key_encoders = copy.deepcopy(self.queries)
        self.key_heads = copy.deepcopy(self.heads)
        for p in list(self.key_encoders.parameters()) + list(self.key_heads.parameters()):
            p.requires_grad_(False)
        # One queue per representation, holding its keys; distinct random initial keys for each.
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        self.queue_size = int(queue_size)
        self.queues = nn.ModuleDict(
            {rep: KeyQueue(queue_size, proj_dim, seed=self._queue_seed(i)) for i, rep in enumerate(self.reps)}
            if queue_size else {}
        )
        self.m, self.temperature = float(momentum), float(temperature)

        num_joints = encoder.layout.num_joints if hasattr(encoder, "layout") else None
        if corrupt_joints is None:
            if num_joints is None:
                raise ValueError("give corrupt_joints: the encoder has no layout to derive it from")
            corrupt_joints = round(0.6 * num_joints)  # ISC: 15 of NTU's 25
        crop = tuple(float(c) for c in crop)
        # feeder_pretraining_inter.py: crop-resize, then pose augmentation (shear) or joint corruption
        # with probability 0.5 each; each view drawn independently.
        self.augment = T.Augment([
            (T.crop_resize, {"out_frames": frames, "ratio": crop, "min_frames": frames}),
            (T.random_choice, {"choices": [(T.shear, {"magnitude": shear, "coords": coords}),
                                           (T.joint_corruption, {"num_joints": int(corrupt_joints), "coords": coords})]}),
        ])
        self.gather: Callable[[torch.Tensor], torch.Tensor] = no_gather

    @staticmethod
    def _build_partner(encoder: Encoder, partner: Encoder | dict[str, Any] | None, rep: str) -> Encoder:
        if isinstance(partner, Encoder):
            return partner
        spec = {"name": DEFAULT_ENCODERS[rep], "kwargs": {}} if partner is None else dict(partner)
        unknown = set(spec) - {"name", "kwargs"}
        if "name" not in spec or unknown:
            raise ValueError(f"partner must be an encoder or {{'name': ..., 'kwargs': {{...}}}}, got {partner!r}")
        kwargs = dict(spec.get("kwargs") or {})
        for key, value in _context(encoder).items():
            if key in kwargs and str(getattr(kwargs[key], "name", kwargs[key])) != str(value):
                raise ValueError(f"partner {key}={kwargs[key]!r} conflicts with the encoder's {key}={value!r}")
            kwargs[key] = value
        return build_encoder(str(spec["name"]), **kwargs)

    # -- the Method interface --------------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:  # type: ignore[override]
        """The query encoder evaluation uses (``export``)."""
        return self.queries[self.export_rep]

    def export_encoder(self) -> Encoder:
        return self.queries[self.export_rep]

    def momentum(self) -> float:
        return self.m

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(query, key) encoders and heads of every representation."""
        pairs = []
        for rep in self.reps:
            pairs += [(self.queries[rep], self.key_encoders[rep]), (self.heads[rep], self.key_heads[rep])]
        return pairs

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """One group, weight decay on every trainable parameter (official ``SGD(model.parameters(), ...)``)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "weight_decay": weight_decay}]

    def _queue_seed(self, i: int) -> int:
        """Seed of the ``i``-th queue's initial keys: distinct per queue, the same on every process."""
        return 2 * self.run_seed + i

    def reset_random_state(self) -> None:
        """Redraw the initial queue keys from :attr:`run_seed` (set before training)."""
        for i, queue in enumerate(self.queues.values()):
            queue.reset(self._queue_seed(i))

    def views(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The query and key views of the current step (each ``x`` ``(N, C, frames, V, M)``)."""
        g = self.generator()
        return self.augment(batch, g), self.augment(batch, g)

    @torch.no_grad()
    def encode_keys(self, view: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Momentum-encoder keys of a view: representation -> ``(N, proj_dim)`` L2-normalised float32."""
        return {
            rep: F.normalize(self.key_heads[rep](self.key_encoders[rep](view["x"], view["lengths"])).float(), dim=1)
            for rep in self.reps
        }

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Two views -> queries (view 1) and momentum keys (view 2) -> cross InfoNCE -> enqueue keys.

        Args:
            batch: ``x`` ``(N, C, T, V, M)``, ``lengths`` ``(N,)``.

        Returns:
            The loss and logs: ``loss``; per query representation ``r``: ``loss_r`` and ``top1_r``
            (fraction of queries whose largest logit is their positive).
        """
        view_q, view_k = self.views(batch)
        z_q = {rep: self.heads[rep](self.queries[rep](view_q["x"], view_q["lengths"])) for rep in self.reps}  # (N, D)
        keys = self.encode_keys(view_k)  # rep -> (N, D)
        with torch.no_grad():
            gathered = {rep: self.gather(k.detach()) for rep, k in keys.items()}  # (B, D), B = N x processes
            for rep in self.queues:
                self.queues[rep].check_batch(gathered[rep].shape[0])
        # Inter: the query of one representation is scored against the *other* one's key and queue.
        other = {self.reps[0]: self.reps[-1], self.reps[-1]: self.reps[0]}
        total = z_q[self.reps[0]].new_zeros((), dtype=torch.float32)
        logs: dict[str, torch.Tensor] = {}
        for rep in self.reps:
            src = other[rep]
            if self.queue_size:
                negatives = self.queues[src].keys.clone()  # (K, D): a snapshot, the queue is written below
                logits, target = info_nce_logits(z_q[rep], keys[src], self.temperature, negatives)  # (N, 1 + K)
            else:  # in-batch keys (MoCo v3): every key of the global batch is a candidate
                offset = process_rank() * z_q[rep].shape[0]
                logits, target = info_nce_logits(z_q[rep], gathered[src], self.temperature, offset=offset)  # (N, B)
            loss, logs[f"top1_{rep}"] = contrastive_loss(logits, target)
            total = total + loss
            logs[f"loss_{rep}"] = loss.detach()
        with torch.no_grad():
            for rep in self.queues:
                self.queues[rep].enqueue(gathered[rep])
            self.step += 1
        logs["loss"] = total.detach()
        return total, logs
