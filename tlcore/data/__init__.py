"""Pictures in, facts out: finding a dataset's images, checking them, splitting them, and what is worth a look.

Owns: the audit (`audit`), its records (`records`), the user's edits to a
dataset, recorded and never made to the files (`edits`), the split (`split`), reading
and checking images (`images`, `image_formats`), zips (`archive`), browser
uploads (`uploads`), folders on the server (`server_paths`), duplicate search
(`duplicates`), findings (`findings`) and the demo dataset (`demo`, `demo_drawing`).

May import: `tlcore.errors`, `tlcore.paths`, `tlcore.classroom.quotas` (what a
person may still write: uploads and unpacked zips count), the standard library,
numpy, Pillow and imagehash. Never TensorFlow or Keras, so the app's pages stay light.
"""
