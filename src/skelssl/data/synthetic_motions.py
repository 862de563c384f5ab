"""Action programs of the synthetic generator: joint-angle curves for each action class.

A program receives a :class:`Motion` (angles of every person, already holding the rest pose and idle
motion) and the action's phase ``s`` per frame (``0`` before the action, ``1`` after it, warped in
between) and *adds* its deltas. Programs are written for a right-handed actor in person slot 0 (the
partner of a two-person action in slot 1); left-handed samples are mirrored afterwards
(:func:`~skelssl.data.synthetic_body.mirror_motion`). Programs whose deltas vanish at ``s = 0`` and
``s = 1`` return to rest and can be chained into untrimmed sequences.

Several classes are deliberately near one another, so that the data cannot be solved by a linear map of
the raw coordinates: sit down / stand up and push / pull are the same poses in opposite temporal
order; punch and punch-person share the actor's motion; bow and pick-up share the trunk bend; wave,
reach-up and throw all raise the dominant arm. Most programs also draw a style (forearm or whole-arm
wave, straight punch or hook, front or side kick, overarm or underarm throw, jumping jacks, stooping or
squatting pick-up, one- or two-handed push and pull), so that a class is not one template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from skelssl.data.synthetic_body import (
    CHEST, L_ANK, L_EL, L_HIP, L_KNEE, L_SH, LUMBAR, NECK, PITCH, R_ANK, R_EL, R_HIP, R_KNEE, R_SH, ROLL,
    TWIST, YAW,
)

__all__ = ["Motion", "Context", "ActionSpec", "ACTIONS", "smooth_window", "rise", "pulse"]

# (left, right) joint pairs, indexed together so both sides move in one step.
_HIPS, _KNEES, _ANKLES = [L_HIP, R_HIP], [L_KNEE, R_KNEE], [L_ANK, R_ANK]
_SHOULDERS, _ELBOWS = [L_SH, R_SH], [L_EL, R_EL]
_INWARD = np.array([-1.0, 1.0])  # yaw that turns the (left, right) arm towards the midline
_OUTWARD = np.array([1.0, -1.0])  # roll that lifts the (left, right) arm out to the side


@dataclass
class Motion:
    """Per-frame pose parameters of every person of one sequence.

    Args:
        ang: ``(T, P, 26, 4)`` joint angles.
        shift: ``(T, P, 3)`` root displacement in each body's frame (x left, y up, z forward).
        support: ``(T, P)`` weight of the left foot in the planted-feet correction.
        plant: ``(P,)`` strength of the planted-feet correction (0 for walking).
    """

    ang: np.ndarray
    shift: np.ndarray
    support: np.ndarray
    plant: np.ndarray


@dataclass
class Context:
    """What a program may use besides the phase.

    Args:
        rng: the sample's generator.
        amp: amplitude factor (about 0.6-1.45: the subject's times the sample's).
        dist: initial pelvis-to-pelvis distance of two persons (metres).
        frames: duration of the action in frames.
        heights: standing height of each person (metres).
    """

    rng: np.random.Generator
    amp: float
    dist: float
    frames: int
    heights: tuple[float, ...] = (1.7, 1.7)

    def cycles(self, lo: int, hi: int, period: float = 14.0) -> int:
        """A repetition count in ``[lo, hi]`` that fits the action's duration (about ``period`` frames each)."""
        fit = int(round(self.frames / (period * self.rng.uniform(0.8, 1.25))))
        return int(np.clip(fit, lo, hi))


def _ss(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def rise(s: np.ndarray, a: float, b: float) -> np.ndarray:
    """Smooth step from 0 (``s <= a``) to 1 (``s >= b``)."""
    return _ss((s - a) / max(b - a, 1e-6))


def smooth_window(s: np.ndarray, a: float, b: float, c: float, d: float) -> np.ndarray:
    """Smooth trapezoid: rises over ``[a, b]``, holds 1, falls over ``[c, d]``."""
    return rise(s, a, b) * (1.0 - rise(s, c, d))


def pulse(s: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A Gaussian bump of height 1 (zero far from ``centre``)."""
    return np.exp(-(((s - centre) / width) ** 2))


# -- single-person actions --------------------------------------------------------------------------


def _wave(m: Motion, s: np.ndarray, ctx: Context) -> None:
    a = m.ang[:, 0]
    h = smooth_window(s, 0.0, 0.2, 0.8, 1.0)
    n = ctx.cycles(2, 5, period=12)
    osc = np.sin(2 * np.pi * n * rise(s, 0.2, 0.8))
    if ctx.rng.random() < 0.65:  # forearm wave: upper arm out, forearm up and swinging at the elbow
        a[:, R_SH, ROLL] -= h * ctx.rng.uniform(1.5, 2.4)
        a[:, R_SH, TWIST] -= h * 1.5  # elbow hinge turned forward: the forearm bends upward
        a[:, R_EL, PITCH] -= h * (1.2 + 0.45 * ctx.amp * osc)
    else:  # whole-arm wave overhead, swinging at the shoulder
        a[:, R_SH, ROLL] -= h * (2.7 + 0.3 * ctx.amp * osc)
        a[:, R_SH, PITCH] -= h * ctx.rng.uniform(0.0, 0.5)
        a[:, R_EL, PITCH] -= h * 0.3


def _clap(m: Motion, s: np.ndarray, ctx: Context) -> None:
    a = m.ang[:, 0]
    h = smooth_window(s, 0.0, 0.2, 0.85, 1.0)
    n = ctx.cycles(3, 8, period=9)
    close = 0.5 - 0.5 * np.cos(2 * np.pi * n * rise(s, 0.2, 0.85))  # 1 = palms together
    level = ctx.rng.uniform(0.3, 1.3)  # belly-high to face-high
    a[:, _SHOULDERS, PITCH] -= (h * level * (0.75 + 0.25 * ctx.amp))[:, None]
    a[:, _SHOULDERS, YAW] += (h * (0.25 + 0.45 * close))[:, None] * _INWARD
    a[:, _ELBOWS, PITCH] -= (h * (1.35 - 0.3 * level))[:, None]


def _punches(a: np.ndarray, s: np.ndarray, ctx: Context, start: float, end: float, alternate: bool,
             inward: float = 0.0) -> list[float]:
    """Guard pose with 1-3 punches (all straight or all hooks); returns the impact phases."""
    guard = smooth_window(s, start - 0.15, start, end, end + 0.15)
    a[:, _SHOULDERS, PITCH] -= (guard * 0.55)[:, None]
    a[:, _SHOULDERS, YAW] += (guard * 0.2)[:, None] * _INWARD
    a[:, _ELBOWS, PITCH] -= (guard * 1.9)[:, None]
    n = ctx.cycles(1, 3, period=18)
    hits = list(np.linspace(start, end, n + 2)[1:-1])
    hook = ctx.rng.random() < 0.35
    for k, c in enumerate(hits):
        sh, el, side = (R_SH, R_EL, 1.0) if (k % 2 == 0 or not alternate) else (L_SH, L_EL, -1.0)
        p = pulse(s, c, 0.045)
        if hook:  # elbow stays bent, the fist swings round in front of the face
            a[:, sh, PITCH] -= p * 0.6
            a[:, sh, ROLL] -= p * side * 0.9
            a[:, sh, YAW] += p * side * (0.5 + inward)
            a[:, el, PITCH] += p * 0.5
        else:  # straight: the elbow extends
            a[:, sh, PITCH] -= p * (0.95 + 0.2 * ctx.amp)
            a[:, sh, YAW] += p * side * inward
            a[:, el, PITCH] += p * 1.8
        a[:, LUMBAR, YAW] += p * side * 0.3  # the trunk turns into the punch
    return hits


def _punch(m: Motion, s: np.ndarray, ctx: Context) -> None:
    _punches(m.ang[:, 0], s, ctx, 0.15, 0.85, alternate=bool(ctx.rng.random() < 0.5))


def _kick(m: Motion, s: np.ndarray, ctx: Context) -> None:
    a = m.ang[:, 0]
    c = ctx.rng.uniform(0.4, 0.6)
    chamber = pulse(s, c - 0.07, 0.09)
    ext = pulse(s, c, 0.06)
    a[:, R_KNEE, PITCH] += 1.7 * chamber * (1.0 - ext)
    if ctx.rng.random() < 0.7:  # front kick
        a[:, R_HIP, PITCH] -= 0.9 * chamber + (0.6 + 0.5 * ctx.amp) * ext
        a[:, LUMBAR, PITCH] -= 0.25 * ext  # lean back against the kick
    else:  # side kick: the leg goes out sideways, the trunk leans away
        a[:, R_HIP, PITCH] -= 0.9 * chamber
        a[:, R_HIP, ROLL] -= (0.7 + 0.4 * ctx.amp) * ext
        a[:, LUMBAR, ROLL] -= 0.35 * ext
    a[:, _SHOULDERS, ROLL] += (0.45 * smooth_window(s, c - 0.25, c - 0.1, c + 0.1, c + 0.25))[:, None] * _OUTWARD
    m.support[:, 0] = 0.5 + 0.5 * smooth_window(s, c - 0.3, c - 0.15, c + 0.15, c + 0.3)  # stand on the left


def _squat(m: Motion, s: np.ndarray, ctx: Context) -> None:
    a = m.ang[:, 0]
    n = ctx.cycles(1, 3, period=30)
    depth = (0.5 - 0.5 * np.cos(2 * np.pi * n * s)) * (0.75 + 0.25 * ctx.amp)
    a[:, _HIPS, PITCH] -= (1.5 * depth)[:, None]
    a[:, _KNEES, PITCH] += (1.95 * depth)[:, None]
    a[:, _ANKLES, PITCH] -= (0.45 * depth)[:, None]  # keeps the feet flat
    a[:, LUMBAR, PITCH] += 0.5 * depth
    if ctx.rng.random() < 0.6:
        a[:, _SHOULDERS, PITCH] -= (1.3 * depth)[:, None]  # arms forward for balance
    else:  # hands behind the head
        a[:, _SHOULDERS, ROLL] += (2.3 * rise(s, 0.0, 0.1) * (1 - rise(s, 0.9, 1.0)))[:, None] * _OUTWARD
        a[:, _SHOULDERS, TWIST] += (-1.5 * rise(s, 0.0, 0.1) * (1 - rise(s, 0.9, 1.0)))[:, None] * _OUTWARD
        a[:, _ELBOWS, PITCH] -= (2.0 * rise(s, 0.0, 0.1) * (1 - rise(s, 0.9, 1.0)))[:, None]


def _jump(m: Motion, s: np.ndarray, ctx: Context) -> None:
    a = m.ang[:, 0]
    n = ctx.cycles(1, 3, period=28)
    height = 0.12 + 0.12 * ctx.amp * ctx.rng.uniform(0.6, 1.2)
    jack = ctx.rng.random() < 0.3  # jumping jacks: arms and legs open sideways in the air
    crouch_depth = ctx.rng.uniform(0.5, 1.2)
    for c in np.linspace(0.0, 1.0, n + 2)[1:-1]:
        w = 0.35 / (n + 1)
        crouch = (pulse(s, c - 0.55 * w, 0.25 * w) + pulse(s, c + 0.55 * w, 0.25 * w)) * crouch_depth
        x = np.clip((s - (c - 0.3 * w)) / (0.6 * w), 0.0, 1.0)
        flight = 4 * x * (1 - x)  # parabola of the airborne part
        a[:, _HIPS, PITCH] -= (1.0 * crouch)[:, None]
        a[:, _KNEES, PITCH] += (1.4 * crouch)[:, None]
        a[:, _ANKLES, PITCH] += (-0.4 * crouch + 0.6 * flight)[:, None]
        a[:, LUMBAR, PITCH] += 0.35 * crouch
        if jack:
            a[:, _SHOULDERS, ROLL] += (2.4 * flight)[:, None] * _OUTWARD
            a[:, _HIPS, ROLL] += (0.35 * flight)[:, None] * _OUTWARD
        else:
            a[:, _SHOULDERS, PITCH] += (0.6 * crouch - 2.2 * flight)[:, None]  # swing back, then up
        m.shift[:, 0, 1] += height * flight


def _throw(m: Motion, s: np.ndarray, ctx: Context) -> None:
    a = m.ang[:, 0]
    c = ctx.rng.uniform(0.45, 0.6)
    windup = smooth_window(s, c - 0.35, c - 0.12, c - 0.06, c + 0.02)
    release = pulse(s, c + 0.04, 0.05)
    follow = smooth_window(s, c + 0.02, c + 0.1, c + 0.15, c + 0.38)
    if ctx.rng.random() < 0.7:  # overarm: the hand goes up behind the head, then over the top
        a[:, R_SH, PITCH] -= (2.7 + 0.3 * ctx.amp) * windup + 1.4 * release + 0.5 * follow
        a[:, R_SH, ROLL] -= 0.45 * windup
        a[:, R_EL, PITCH] -= 1.5 * windup
    else:  # underarm: the straight arm swings back, then forward and up
        a[:, R_SH, PITCH] += 0.9 * windup - (1.2 + 0.4 * ctx.amp) * release - 0.8 * follow
        a[:, R_EL, PITCH] += 0.15 * windup
    a[:, LUMBAR, YAW] += -0.45 * windup + 0.35 * follow
    a[:, LUMBAR, PITCH] += -0.2 * windup + 0.35 * follow
    a[:, L_SH, PITCH] -= 1.0 * windup  # the free arm points at the target
    a[:, L_HIP, PITCH] -= 0.35 * smooth_window(s, c - 0.3, c - 0.1, c + 0.2, c + 0.4)  # step into the throw


def _sit(m: Motion, down: np.ndarray, lean: np.ndarray) -> None:
    a = m.ang[:, 0]
    a[:, _HIPS, PITCH] -= (1.5 * down)[:, None]
    a[:, _KNEES, PITCH] += (1.5 * down)[:, None]
    a[:, LUMBAR, PITCH] += 0.55 * lean + 0.08 * down
    a[:, _SHOULDERS, PITCH] -= (0.35 * down)[:, None]  # hands rest on the thighs
    a[:, _ELBOWS, PITCH] -= (0.6 * down)[:, None]


def _sit_down(m: Motion, s: np.ndarray, ctx: Context) -> None:
    _sit(m, rise(s, 0.15, 0.85) * ctx.rng.uniform(0.8, 1.1), pulse(s, 0.55, 0.18) * ctx.amp)


def _stand_up(m: Motion, s: np.ndarray, ctx: Context) -> None:
    _sit(m, (1.0 - rise(s, 0.15, 0.85)) * ctx.rng.uniform(0.8, 1.1), pulse(s, 0.4, 0.18) * ctx.amp)


def _bow(m: Motion, s: np.ndarray, ctx: Context) -> None:
    a = m.ang[:, 0]
    h = smooth_window(s, 0.05, 0.4, 0.6, 0.95) * (0.6 + 0.35 * ctx.amp)
    a[:, LUMBAR, PITCH] += 0.85 * h
    a[:, CHEST, PITCH] += 0.2 * h
    a[:, NECK, PITCH] += 0.25 * h
    a[:, _SHOULDERS, PITCH] -= (0.45 * h)[:, None]  # arms hang (they would swing back with the trunk)


def _pick_up(m: Motion, s: np.ndarray, ctx: Context) -> None:
    a = m.ang[:, 0]
    h = smooth_window(s, 0.1, 0.4, 0.5, 0.8) * (0.8 + 0.2 * ctx.amp)
    knees = ctx.rng.uniform(0.0, 1.0)  # 0: stoop with straight legs (like a bow), 1: squat down
    a[:, LUMBAR, PITCH] += (1.3 - 0.6 * knees) * h
    a[:, _HIPS, PITCH] -= (1.3 * knees * h)[:, None]
    a[:, _KNEES, PITCH] += ((0.1 + 1.8 * knees) * h)[:, None]
    a[:, _ANKLES, PITCH] -= (0.5 * knees * h)[:, None]
    a[:, _SHOULDERS, PITCH] -= (0.8 * h)[:, None]  # arms hang towards the floor
    a[:, R_SH, PITCH] -= 0.35 * h  # the right hand reaches for the object
    a[:, R_EL, PITCH] += 0.2 * h
    carry = smooth_window(s, 0.45, 0.7, 0.85, 1.0)
    a[:, R_EL, PITCH] -= 1.5 * carry  # bring the object up to the chest
    a[:, R_SH, PITCH] -= 0.3 * carry


def _reach_up(m: Motion, s: np.ndarray, ctx: Context) -> None:
    a = m.ang[:, 0]
    h = smooth_window(s, 0.1, 0.35, 0.65, 0.9)
    arms = [R_SH, L_SH] if ctx.rng.random() < 0.3 else [R_SH]
    for sh in arms:
        a[:, sh, PITCH] -= (ctx.rng.uniform(2.0, 2.7) + 0.3 * ctx.amp) * h  # up, or up and forward
        a[:, sh + 1, PITCH] += 0.2 * h  # straight elbow (elbow = shoulder + 1)
    a[:, _ANKLES, PITCH] += (0.45 * h)[:, None]  # up on the toes
    a[:, NECK, PITCH] -= 0.35 * h  # look up


# -- two-person actions (actor slot 0, partner slot 1; they face each other) --------------------------


def _handshake(m: Motion, s: np.ndarray, ctx: Context) -> None:
    h = smooth_window(s, 0.1, 0.35, 0.7, 0.9)
    n = ctx.cycles(2, 4, period=8)
    shake = np.sin(2 * np.pi * n * rise(s, 0.35, 0.65)) * smooth_window(s, 0.33, 0.38, 0.62, 0.67)
    step = max(ctx.dist - 0.9, 0.0) / 2  # stop close enough for the hands to meet
    meet = float(np.mean(ctx.heights[:2]))
    for p in (0, 1):
        a = m.ang[:, p]
        # The hands meet half-way up: the taller person reaches lower (shoulders at ~0.82 of height).
        a[:, R_SH, PITCH] -= (0.85 + 0.82 * (meet - ctx.heights[p]) / 0.55) * h + 0.12 * shake
        a[:, R_SH, YAW] += 0.4 * h
        a[:, R_EL, PITCH] -= 0.45 * h
        m.shift[:, p, 2] += step * h


def _hug(m: Motion, s: np.ndarray, ctx: Context) -> None:
    h = smooth_window(s, 0.05, 0.35, 0.65, 0.95)
    step = max(ctx.dist - 0.42, 0.0) / 2
    for p, high in ((0, R_SH), (1, L_SH)):
        a = m.ang[:, p]
        a[:, _SHOULDERS, PITCH] -= (1.35 * h)[:, None]
        a[:, high, PITCH] -= 0.35 * h  # one arm over the partner's shoulder, one under
        a[:, _SHOULDERS, YAW] += (0.75 * h)[:, None] * _INWARD
        a[:, _ELBOWS, PITCH] -= (1.1 * h)[:, None]
        a[:, LUMBAR, PITCH] += 0.15 * h
        a[:, NECK, YAW] += (0.5 if p == 0 else -0.5) * h
        m.shift[:, p, 2] += step * h
    pat = np.sin(2 * np.pi * ctx.cycles(2, 4, period=8) * s) * smooth_window(s, 0.4, 0.45, 0.55, 0.6)
    m.ang[:, 0, R_EL, PITCH] += 0.25 * pat


def _push(m: Motion, s: np.ndarray, ctx: Context) -> None:
    a, b = m.ang[:, 0], m.ang[:, 1]
    c = ctx.rng.uniform(0.4, 0.55)
    prep = smooth_window(s, c - 0.25, c - 0.1, c + 0.05, c + 0.3)
    thrust = smooth_window(s, c - 0.08, c, c + 0.06, c + 0.3)
    arms = _SHOULDERS if ctx.rng.random() < 0.7 else [R_SH]  # two hands or one
    elbows = [sh + 1 for sh in arms]
    a[:, arms, PITCH] -= (1.3 * prep)[:, None]
    a[:, arms, YAW] += (0.2 * prep)[:, None] * (_INWARD if len(arms) == 2 else 1.0)
    a[:, elbows, PITCH] += (-1.5 * prep + 1.35 * thrust)[:, None]
    a[:, LUMBAR, PITCH] += 0.25 * thrust
    m.shift[:, 0, 2] += 0.15 * rise(s, c - 0.12, c + 0.03)
    back = rise(s, c, c + 0.25) * (0.25 + 0.25 * ctx.amp)  # the partner is pushed away
    m.shift[:, 1, 2] -= back
    jolt = pulse(s, c + 0.07, 0.08)
    b[:, LUMBAR, PITCH] -= 0.35 * jolt
    b[:, _SHOULDERS, ROLL] += (0.5 * jolt)[:, None] * _OUTWARD
    b[:, _SHOULDERS, PITCH] -= (0.7 * jolt)[:, None]
    b[:, L_HIP, PITCH] += 0.3 * jolt  # stagger


def _pull(m: Motion, s: np.ndarray, ctx: Context) -> None:
    a, b = m.ang[:, 0], m.ang[:, 1]
    c1 = ctx.rng.uniform(0.28, 0.4)
    c2 = c1 + ctx.rng.uniform(0.15, 0.25)
    reach = smooth_window(s, c1 - 0.2, c1, c2 + 0.1, c2 + 0.3)
    pull = smooth_window(s, c2 - 0.05, c2 + 0.1, c2 + 0.2, 1.0)
    arms = _SHOULDERS if ctx.rng.random() < 0.6 else [R_SH]  # two hands or one
    elbows = [sh + 1 for sh in arms]
    a[:, arms, PITCH] -= (1.3 * reach - 0.8 * pull)[:, None]
    a[:, arms, YAW] += (0.2 * reach)[:, None] * (_INWARD if len(arms) == 2 else 1.0)
    a[:, elbows, PITCH] += (0.15 * reach - 1.6 * pull)[:, None]
    a[:, LUMBAR, PITCH] -= 0.3 * pull  # lean back to pull
    m.shift[:, 0, 2] -= 0.15 * rise(s, c2, c2 + 0.15)
    towards = rise(s, c2, c2 + 0.22) * (0.2 + 0.2 * ctx.amp)  # the partner is dragged closer
    m.shift[:, 1, 2] += towards
    b[:, R_SH, PITCH] -= 1.0 * smooth_window(s, c1, c1 + 0.1, c2 + 0.2, c2 + 0.35)  # held by the wrist
    b[:, LUMBAR, PITCH] += 0.35 * pulse(s, c2 + 0.1, 0.08)
    b[:, R_HIP, PITCH] -= 0.3 * pulse(s, c2 + 0.12, 0.08)  # stumbling step


def _punch_person(m: Motion, s: np.ndarray, ctx: Context) -> None:
    hits = _punches(m.ang[:, 0], s, ctx, 0.2, 0.8, alternate=bool(ctx.rng.random() < 0.3), inward=0.15)
    b = m.ang[:, 1]
    guard = ctx.rng.random() < 0.5
    for c in hits:
        hit = pulse(s, c + 0.05, 0.06)
        b[:, LUMBAR, PITCH] -= 0.3 * hit
        b[:, NECK, PITCH] -= 0.45 * hit  # the head snaps back
        m.shift[:, 1, 2] -= 0.1 * rise(s, c, c + 0.1)
        if guard:
            b[:, _SHOULDERS, PITCH] -= (0.8 * smooth_window(s, c - 0.15, c - 0.05, c + 0.1, c + 0.2))[:, None]
            b[:, _ELBOWS, PITCH] -= (1.6 * smooth_window(s, c - 0.15, c - 0.05, c + 0.1, c + 0.2))[:, None]


def _walk_towards(m: Motion, s: np.ndarray, ctx: Context) -> None:
    stop = ctx.rng.uniform(0.75, 1.05)  # where they stop, pelvis to pelvis
    total = max(ctx.dist - stop, 0.2)
    share = ctx.rng.uniform(0.35, 0.65) if ctx.rng.random() < 0.7 else 1.0  # sometimes only one walks
    progress = rise(s, 0.08, 0.85)
    gait = smooth_window(s, 0.05, 0.15, 0.78, 0.9)
    for p, dist in ((0, total * share), (1, total * (1 - share))):
        if dist <= 0:
            continue
        a = m.ang[:, p]
        steps = max(1.0, dist / 0.65)  # one step is about 0.65 m
        phi = np.pi * steps * progress + (p * np.pi / 2)
        swing = np.sin(phi) * gait
        a[:, L_HIP, PITCH] -= 0.4 * swing
        a[:, R_HIP, PITCH] += 0.4 * swing
        a[:, L_KNEE, PITCH] += 0.6 * np.clip(np.cos(phi), 0, None) * gait
        a[:, R_KNEE, PITCH] += 0.6 * np.clip(-np.cos(phi), 0, None) * gait
        a[:, L_SH, PITCH] += 0.35 * swing  # arms swing against the legs
        a[:, R_SH, PITCH] -= 0.35 * swing
        m.shift[:, p, 2] += dist * progress
        m.plant[p] = 0.0


@dataclass(frozen=True)
class ActionSpec:
    """One action class.

    Args:
        name: class name.
        program: ``(motion, phase, context) -> None`` adding the action's deltas.
        persons: 1 or 2.
        dist: range of the initial pelvis-to-pelvis distance of the two persons (metres).
        free_arm: whether the left arm of each person is free for idle postures during the action.
        returns_to_rest: the deltas vanish at both ends (usable inside untrimmed sequences).
    """

    name: str
    program: Callable[[Motion, np.ndarray, Context], None]
    persons: int = 1
    dist: tuple[float, float] = (1.0, 1.3)
    free_arm: bool = False
    returns_to_rest: bool = True


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("wave", _wave, free_arm=True),
    ActionSpec("clap", _clap),
    ActionSpec("punch", _punch),
    ActionSpec("kick", _kick),
    ActionSpec("throw", _throw),
    ActionSpec("squat", _squat),
    ActionSpec("jump", _jump),
    ActionSpec("sit down", _sit_down, returns_to_rest=False),
    ActionSpec("stand up", _stand_up, returns_to_rest=False),
    ActionSpec("bow", _bow),
    ActionSpec("pick up", _pick_up, free_arm=True),
    ActionSpec("reach up", _reach_up),
    ActionSpec("handshake", _handshake, persons=2, dist=(1.1, 1.45), free_arm=True),
    ActionSpec("hug", _hug, persons=2, dist=(1.0, 1.4)),
    ActionSpec("push", _push, persons=2, dist=(0.85, 1.1), returns_to_rest=False),
    ActionSpec("pull", _pull, persons=2, dist=(0.95, 1.2), returns_to_rest=False),
    ActionSpec("punch person", _punch_person, persons=2, dist=(0.9, 1.15)),
    ActionSpec("walk towards", _walk_towards, persons=2, dist=(2.6, 3.4), free_arm=True, returns_to_rest=False),
)
