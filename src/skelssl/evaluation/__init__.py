"""Evaluation of frozen or fine-tuned encoders: features, kNN, heads, metrics, results and the report.

Evaluation loads an *encoder* and never imports the method that trained it.
"""

from skelssl.evaluation.features import extract_features, run_model
from skelssl.evaluation.heads import Classifier, LinearHead, MLPHead, evaluate_classifier
from skelssl.evaluation.knn import knn_accuracy, knn_neighbors, knn_predict
from skelssl.evaluation.metrics import (
    ClassificationAccumulator,
    RunningMean,
    confusion_matrix,
    mean_std,
    topk_accuracy,
)
from skelssl.evaluation.published import all_published, published_for
from skelssl.evaluation.report import collect, markdown_table
from skelssl.evaluation.results import REQUIRED_KEYS, TASKS, config_hash, read_results, write_results

__all__ = [
    "extract_features",
    "run_model",
    "Classifier",
    "LinearHead",
    "MLPHead",
    "evaluate_classifier",
    "knn_accuracy",
    "knn_neighbors",
    "knn_predict",
    "ClassificationAccumulator",
    "RunningMean",
    "confusion_matrix",
    "mean_std",
    "topk_accuracy",
    "all_published",
    "published_for",
    "collect",
    "markdown_table",
    "REQUIRED_KEYS",
    "TASKS",
    "config_hash",
    "read_results",
    "write_results",
]
