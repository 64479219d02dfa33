"""What a trained run gives: its evaluation, predictions on new pictures, why it says what it says, exported models.

Owns: the evaluation (`evaluation`), predictions (`prediction`), Grad-CAM
heatmaps kept in the run folder (`explain`), the rule that says a picture
looks like none of the classes (`doubt`), two runs side by side (`compare`)
(exports: `tlcore.export`).

May import: `tlcore.runs`, `tlcore.model`, `tlcore.data`, `tlcore.errors`, `tlcore.paths`.
"""
