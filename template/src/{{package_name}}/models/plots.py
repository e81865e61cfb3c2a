"""Evaluation plots drawn on plain matplotlib Figures (Agg canvas: no display, no pyplot state)."""

from __future__ import annotations

from matplotlib.figure import Figure
from torchmetrics.classification import BinaryConfusionMatrix, BinaryROC


def roc_curve_figure(roc: BinaryROC) -> Figure:
    figure = Figure(figsize=(5, 5), layout="constrained")
    ax = figure.add_subplot()
    roc.plot(ax=ax, score=True)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.legend(loc="lower right")
    ax.set_title("ROC curve (test split)")
    return figure


def confusion_matrix_figure(confusion: BinaryConfusionMatrix) -> Figure:
    figure = Figure(figsize=(5, 5), layout="constrained")
    ax = figure.add_subplot()
    confusion.plot(ax=ax, labels=["negative", "positive"])
    ax.set_title("Confusion matrix (test split, threshold 0.5)")
    return figure
