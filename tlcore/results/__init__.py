"""What a trained run gives: its evaluation, predictions on new pictures, and exported models.

May import: `tlcore.runs`, `tlcore.model`, `tlcore.data`, `tlcore.errors`, `tlcore.paths`.
"""
