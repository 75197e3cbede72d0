"""A campaign's reward, model, training and round settings.

Every field is optional when creating a campaign: the server fills in its default, and the
campaign it answers carries every value. Plain dicts are accepted wherever these classes are
(``training={"steps": 200}``); the classes are here so that editors complete the names.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Literal, Optional

Acquisition = Literal["ucb", "mean"]
Transform = Literal["exp", "power"]
Objective = Literal["tb", "db", "subtb", "fm"]
BackwardPolicy = Literal["learned", "uniform"]
FeatureSet = Literal["onehot", "onehot+composition", "onehot+kmer", "kmer"]
Selection = Literal["proportional", "greedy"]


@dataclass(frozen=True)
class RewardSettings:
    """How measured scores become the reward the GFlowNet samples in proportion to."""

    maximize: Optional[bool] = None
    acquisition: Optional[Acquisition] = None
    kappa: Optional[float] = None
    transform: Optional[Transform] = None
    beta: Optional[float] = None
    min: Optional[float] = None


@dataclass(frozen=True)
class ModelSettings:
    """The GFlowNet: objective, network size and optimiser."""

    objective: Optional[Objective] = None
    backward_policy: Optional[BackwardPolicy] = None
    hidden: Optional[int] = None
    layers: Optional[int] = None
    lr: Optional[float] = None
    lr_log_z: Optional[float] = None
    subtb_lambda: Optional[float] = None
    fm_epsilon: Optional[float] = None
    max_grad_norm: Optional[float] = None


@dataclass(frozen=True)
class TrainingMix:
    """Shares of each training step's trajectories (normalised by the server)."""

    labelled: Optional[float] = None
    forward: Optional[float] = None
    local_search: Optional[float] = None
    conservative: Optional[float] = None


@dataclass(frozen=True)
class ProxySettings:
    """The ensemble that predicts scores from the labels."""

    members: Optional[int] = None
    hidden: Optional[int] = None
    steps: Optional[int] = None
    holdout: Optional[float] = None
    features: Optional[FeatureSet] = None


@dataclass(frozen=True)
class TrainingSettings:
    """Each training run and the default exploration of rounds.

    ``pool`` to ``selection`` are the round settings as campaigns first wrote them: give
    them in ``RoundSettings`` instead (the server refuses them here when a ``round`` block
    is given too). A campaign the server answers repeats its round settings here.
    """

    steps: Optional[int] = None
    batch_size: Optional[int] = None
    seed: Optional[int] = None
    temperature: Optional[float] = None
    epsilon: Optional[float] = None
    mix: Optional[TrainingMix] = None
    proxy: Optional[ProxySettings] = None
    elites: Optional[int] = None
    conservative_delta: Optional[float] = None
    pool: Optional[int] = None
    pool_local_search: Optional[float] = None
    pool_conservative: Optional[float] = None
    pool_spread: Optional[float] = None
    pool_walk: Optional[int] = None
    refine: Optional[int] = None
    refine_backtrack: Optional[float] = None
    selection: Optional[Selection] = None


@dataclass(frozen=True)
class RoundSettings:
    """How a round makes its batch: the pool it scores, where the pool comes from, how
    policy samples are refined and how the batch is chosen."""

    pool: Optional[int] = None
    pool_local_search: Optional[float] = None
    pool_conservative: Optional[float] = None
    pool_spread: Optional[float] = None
    pool_walk: Optional[int] = None
    refine: Optional[int] = None
    refine_backtrack: Optional[float] = None
    selection: Optional[Selection] = None


def settings_to_json(settings: Any) -> Any:
    """The JSON of settings given as one of the classes above or as a dict; unset (None)
    fields are left out so that the server's defaults apply."""
    if is_dataclass(settings) and not isinstance(settings, type):
        return {
            f.name: settings_to_json(getattr(settings, f.name))
            for f in fields(settings)
            if getattr(settings, f.name) is not None
        }
    if isinstance(settings, dict):
        return {k: settings_to_json(v) for k, v in settings.items()}
    return settings
