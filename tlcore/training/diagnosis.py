"""What a finished run's curves say that the user should hear: a model that never got past guessing.

A learning rate far too high (10, say) makes a run "complete" with its accuracy
at chance level: as good as picking a class at random. Nothing crashes, so
without a word the user would take it for the best the data allows.
"""

from __future__ import annotations

import statistics

CHANCE_EPOCHS = 3  # epochs after which a model still at chance is not going to learn by itself
CHANCE_MARGIN = 1.25  # "at chance": the recent training accuracy is at most this many times 1 / classes


def chance_warning(epoch_rows: list[dict], classes: int, learning_rate: float) -> str | None:
    """A warning when training accuracy stayed at chance level after a few epochs, else None.

    Args:
        epoch_rows: the run's epoch rows (`metrics.jsonl`), each with its training `accuracy`.
        classes: the number of classes; chance is one in this many.
        learning_rate: the run's learning rate, named in the advice.
    """
    accuracies = [row["accuracy"] for row in epoch_rows if row.get("accuracy") is not None]
    if len(accuracies) < CHANCE_EPOCHS or classes < 2:
        return None
    chance = 1.0 / classes
    recent = statistics.median(accuracies[-CHANCE_EPOCHS:])  # one lucky batch of a tiny dataset is not learning
    if recent > chance * CHANCE_MARGIN:
        return None
    suggestion = "0.001" if learning_rate > 0.001 else "0.01"
    return (f"the model stayed at chance level: it was right on about {recent:.0%} of its training pictures "
            f"after {len(accuracies)} epochs, no better than guessing one of {classes} classes ({chance:.0%}). "
            f"The learning rate ({learning_rate:g}) is probably {'too high' if learning_rate > 0.001 else 'unsuited'}; "
            f"try {suggestion}.")
