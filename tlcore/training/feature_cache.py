"""Whether a run computes its frozen layers' features once, and where it keeps them: one decision, one owner.

When the bottom of the network is frozen, its output for a picture never
changes, so the features at the freeze boundary are computed once and only
the top is trained on them. Augmentation makes each view of a picture
different, so a run with augmentation computes a bounded number of views per
training picture (`views_per_image`) instead of one.

The training session and the Train page's time estimate both ask this module,
so what the page promises is what the run does. Pure functions: no Keras here.
"""

from __future__ import annotations

from dataclasses import dataclass

AUGMENTED_VIEWS = 4  # views of each training picture when augmentation is on: the picture itself, then random changes
FLIP_VIEWS = 2  # with "flip": the picture itself and its mirror image
MEMORY_BUDGET_BYTES = 1_000_000_000  # one run's features in memory, all splits together
DISK_BUDGET_BYTES = 8_000_000_000  # beyond this the run trains the plain way, through the whole network
FEATURE_BYTES_PER_VALUE = 4  # float32
DISK_SAFETY_MARGIN_BYTES = 200_000_000  # room left for the model, metrics and status beside memory-mapped features

IN_MEMORY, ON_DISK, OFF = "memory", "disk", "off"


@dataclass(frozen=True)
class CacheDecision:
    """What a run does with its frozen layers' features.

    Attributes:
        where: "memory", "disk" (memory-mapped files in the run folder) or "off".
        views: feature views per training picture (1 without augmentation).
        total_bytes: the size of every split's features together.
        reason: in words, why; shown in the run's status.
    """

    where: str
    views: int
    total_bytes: int
    reason: str

    @property
    def cached(self) -> bool:
        return self.where != OFF


def views_per_image(augment: str) -> int:
    """Feature views per training picture: one, two for "flip" (as is and mirrored), or `AUGMENTED_VIEWS`.

    The first view is always the picture as it is, the way validation and
    prediction see it; the other views are changed.
    """
    if augment == "none":
        return 1
    return FLIP_VIEWS if augment == "flip" else AUGMENTED_VIEWS


def decide(
    setting: str,
    cuttable: bool,
    values_per_image: int,
    train_images: int,
    other_images: int,
    augment: str,
    memory_budget: int = MEMORY_BUDGET_BYTES,
    disk_budget: int = DISK_BUDGET_BYTES,
    disk_free: int | None = None,
) -> CacheDecision:
    """Decide whether and where a run caches features; the budgets apply to the whole run.

    Args:
        setting: the config's `feature_cache`, "auto" or "off".
        cuttable: one tensor crosses the freeze boundary (no skip connection).
        values_per_image: numbers in one picture's features at the boundary.
        train_images: training pictures (each gets `views` views).
        other_images: validation and test pictures (one view each).
        augment: the config's augmentation preset.
        memory_budget: the most bytes of features kept in memory.
        disk_budget: the most bytes of features memory-mapped in the run folder.
        disk_free: free bytes where the run folder is (None: not checked). A
            memory-mapped file on a disk without room for it kills the process
            (SIGBUS) at the first write, so the run then trains the plain way.
    """
    views = views_per_image(augment)
    total = values_per_image * FEATURE_BYTES_PER_VALUE * (train_images * views + other_images)
    if setting == "off":
        return CacheDecision(OFF, views, total, "off")
    if not cuttable:
        return CacheDecision(OFF, views, total, "off (a skip connection crosses the freeze boundary)")
    if total > disk_budget:
        return CacheDecision(OFF, views, total, f"off (features would need {total / 1e9:.1f} GB)")
    where = IN_MEMORY if total <= memory_budget else ON_DISK
    if where == ON_DISK and disk_free is not None and total + DISK_SAFETY_MARGIN_BYTES > disk_free:
        return CacheDecision(OFF, views, total, f"off (features would need {total / 1e9:.1f} GB on disk, "
                                                f"and only {disk_free / 1e9:.1f} GB are free)")
    words = "in memory" if where == IN_MEMORY else "on disk (memory-mapped)"
    return CacheDecision(where, views, total, f"{views} view(s) per training image, {words}")
