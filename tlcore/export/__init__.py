"""Exports that run anywhere, with proof that each one scores like the model in the app.

- `formats`: the formats (Keras, SavedModel, TFLite float and int8, ONNX), their files and runtimes.
- `writers`: `export_run` writes one format.
- `runtimes`: runs an exported file with its own runtime (Keras, TensorFlow, LiteRT, ONNX Runtime).
- `pictures`: prepares a picture exactly as the app does, with NumPy and Pillow only (the snippets' code).
- `snippets`: the Python script per format and the JavaScript for the web page.
- `parity`: the parity check, `check_export`, and the reports kept for the Export page.
- `model_card`, `bundle`: MODEL_CARD.md and the zip to hand on (`make_bundle`).

May import: `tlcore.results`, `tlcore.training.config`, `tlcore.runs`, `tlcore.model`, `tlcore.data`,
`tlcore.errors`, `tlcore.paths`. Nothing in tlcore imports it but the CLI.
"""
