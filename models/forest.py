"""P(up) of one row from a fitted HistGradientBoostingClassifier, without predict_proba's
fixed cost per call.

The trader asks every symbol's model for one row at every candle close. scikit-learn's
``predict_proba`` on one row costs about 0.2 ms with 10 trees and 1 ms with 100: input
validation, then for every tree a Python call and an OpenMP parallel region around a
walk of a few nodes (0.5 s a candle at 500 symbols). ``Forest`` keeps the fitted trees
as flat numpy arrays and walks all of them at once, one tree level per numpy step: about
0.05-0.1 ms a row whatever the number of trees (benchmarks/decide_cost.py).

The result is the same number, not an approximation: the same comparisons
(``x <= threshold``, NaN to the side the tree learned), the leaf values added to the
baseline one tree after another in scikit-learn's order, and the same inverse link
(``expit``). ``compile_forest`` checks that on probe rows against ``predict_proba`` and
returns None for anything it does not cover (categorical features, several trees per
iteration, another estimator, a scikit-learn whose internals moved): the caller then uses
``predict_proba``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

import numpy as np
from scipy.special import expit

log = logging.getLogger(__name__)

# probe rows checked against predict_proba when a forest is compiled
_PROBE_ROWS = 64


class Unsupported(ValueError):
    """A model the forest does not cover (predict_proba serves it)."""


class Forest:
    """The trees of one fitted binary HistGradientBoostingClassifier as flat arrays.

    Node ``i`` of the concatenated trees: ``threshold[i]`` (a leaf's value, for a leaf),
    ``feature[i]``, ``left[i]`` / ``right[i]`` (absolute indexes; a leaf points to itself,
    so walking on from a leaf stays there), ``missing_left[i]``. ``roots`` holds each
    tree's first node; ``depth`` is the deepest leaf's depth: that many steps reach
    every leaf.
    """

    def __init__(self, estimator: Any, class_index: int) -> None:
        if getattr(estimator, "n_trees_per_iteration_", None) != 1:
            raise Unsupported("more than two classes")
        if getattr(estimator, "_preprocessor", None) is not None:
            raise Unsupported("categorical features")
        trees = []
        for iteration in estimator._predictors:
            (predictor,) = iteration
            trees.append(predictor.nodes)
        if not trees:
            raise ValueError("no trees")
        nodes = np.concatenate(trees)
        if nodes["is_categorical"].any():
            raise Unsupported("categorical features")
        sizes = np.array([len(t) for t in trees])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        offset = np.repeat(starts, sizes)
        own = np.arange(len(nodes))
        leaf = nodes["is_leaf"].astype(bool)
        self.n_features = int(estimator.n_features_in_)
        feature = np.where(leaf, 0, nodes["feature_idx"])
        if len(feature) and (feature.min() < 0 or feature.max() >= self.n_features):
            raise ValueError("a split on a feature the model does not take")
        self.threshold = np.where(leaf, nodes["value"], nodes["num_threshold"]).astype(np.float64)
        # intp: numpy's index type, so that no take() converts its indexes first (~40 % faster)
        self.feature = feature.astype(np.intp)
        self.left = np.where(leaf, own, nodes["left"].astype(np.intp) + offset).astype(np.intp)
        self.right = np.where(leaf, own, nodes["right"].astype(np.intp) + offset).astype(np.intp)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.roots = starts.astype(np.intp)
        self.depth = int(nodes["depth"].max())
        baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64)
        if baseline.size != 1:
            raise ValueError("not one baseline")
        self.baseline = float(baseline.ravel()[0])
        if class_index not in (0, 1) or len(estimator.classes_) != 2:
            raise Unsupported("more than two classes")
        self.class_index = class_index

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf every tree reaches for the row ``x`` (float64, NaN for missing)."""
        idx = self.roots
        feature, threshold, left, right = self.feature, self.threshold, self.left, self.right
        if np.isnan(x).any():
            missing_left = self.missing_left
            for _ in range(self.depth):
                value = x.take(feature.take(idx))
                go_left = np.where(
                    np.isnan(value), missing_left.take(idx), value <= threshold.take(idx)
                )
                idx = np.where(go_left, left.take(idx), right.take(idx))
        else:
            for _ in range(self.depth):
                go_left = x.take(feature.take(idx)) <= threshold.take(idx)
                idx = np.where(go_left, left.take(idx), right.take(idx))
        return idx

    def prob(self, x: np.ndarray) -> float:
        """P(class ``class_index``) for one row, as predict_proba gives it."""
        raw = 0.0
        raw += self.baseline
        for value in self.threshold.take(self.leaves(x)).tolist():  # tree by tree, in order
            raw += value
        # the binomial loss's inverse link, as predict_proba applies it (without its ~5 us of
        # array-namespace dispatch); compile_forest checks the two agree
        up = float(expit(raw))
        return up if self.class_index == 1 else 1.0 - up


_compiled: weakref.WeakKeyDictionary[Any, Forest | None] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def class_index(estimator: Any) -> int:
    """Where class 1 (price up) is among the estimator's classes; ValueError if absent."""
    hits = np.flatnonzero(np.asarray(estimator.classes_) == 1)
    if len(hits) != 1:
        raise ValueError(f"model has no class 1 among {list(estimator.classes_)}")
    return int(hits[0])


def forest_of(estimator: Any, label: str = "") -> Forest | None:
    """The estimator's compiled forest (made once per estimator), or None if it has none
    (see `compile_forest`). ``label`` names the model in the log (symbol and version)."""
    try:
        with _lock:
            return _compiled[estimator]
    except KeyError:
        pass
    except TypeError:  # not weak-referenceable or not hashable: no cache, so no forest
        return None
    forest = compile_forest(estimator, label)
    with _lock:
        _compiled[estimator] = forest
    return forest


def compile_forest(estimator: Any, label: str = "") -> Forest | None:
    """A `Forest` for ``estimator`` if it is a binary HistGradientBoostingClassifier on
    numeric features and the forest gives exactly its predict_proba on probe rows; else None
    (logged, unless the estimator is of another kind)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    if type(estimator) is not HistGradientBoostingClassifier:
        return None
    name = label or type(estimator).__name__
    try:
        forest = Forest(estimator, class_index(estimator))
        probes = probe_rows(forest)
        expected = estimator.predict_proba(probes)[:, forest.class_index]
        got = np.array([forest.prob(row) for row in probes])
    except Unsupported as exc:
        log.info("%s: P(up) from predict_proba: the fast predictor does not cover %s", name, exc)
        return None
    except Exception as exc:  # scikit-learn's internals moved: say so, and stay correct
        log.warning(
            "%s: no fast predictor (%s: %s); P(up) from predict_proba (3-8x slower)",
            name,
            type(exc).__name__,
            exc,
        )
        return None
    if not np.array_equal(got, expected):
        log.warning(
            "%s: the fast predictor differs from predict_proba by up to %.3g on probe rows; "
            "P(up) from predict_proba (3-8x slower)",
            name,
            float(np.max(np.abs(got - expected))),
        )
        return None
    return forest


def probe_rows(forest: Forest, rows: int = _PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Rows that take both sides of many splits: each feature's value drawn among the
    model's own thresholds for it (exactly on one, or just either side), some missing."""
    rng = np.random.default_rng(seed)
    internal = forest.left != np.arange(len(forest.left))
    out = np.zeros((rows, forest.n_features))
    for f in range(forest.n_features):
        cuts = forest.threshold[internal & (forest.feature == f)]
        cuts = cuts[np.isfinite(cuts)]
        if not len(cuts):
            out[:, f] = rng.normal(size=rows)
            continue
        pick = rng.choice(cuts, size=rows)
        nudge = rng.choice([-1.0, 0.0, 1.0], size=rows) * np.maximum(np.abs(pick) * 1e-9, 1e-12)
        out[:, f] = pick + nudge
    out[rng.random(out.shape) < 0.05] = np.nan
    return out
