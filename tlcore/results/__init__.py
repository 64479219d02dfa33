"""What a trained run gives: its evaluation and predictions on new pictures (exports: `tlcore.export`).

May import: `tlcore.runs`, `tlcore.model`, `tlcore.data`, `tlcore.errors`, `tlcore.paths`.
"""
