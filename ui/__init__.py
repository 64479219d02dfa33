"""The Streamlit helpers the app's pages share; `tlcore` does the work, these show it.

Arrows point one way: pages -> ui -> tlcore's public API. Nothing here trains
or imports TensorFlow, and nothing in `tlcore` imports this package.

- `messages`: errors without tracebacks (`shown_errors`), links and page switches, and
  `open_in_app_menu`, which every page calls first.
- `choices`: what the user chose (dataset, validation share, left-out files,
  model and training settings), kept in the session and in app_state.json.
- `audit_cache`: the dataset audit, cached until the folder changes.
- `run_picker`: which training run a page shows (address bar, session, last used).
- `charts`: learning curves and picture thumbnails.
- `parity`: the Export page's table of how each exported file scores against the app, flagged files in red.
- `words`: numbers and names said for people (percentages, run states, model titles).

Pages import it as `from ui import choices, messages`: Streamlit puts the folder
of `app.py` on `sys.path`, and the tests get it from pyproject's `pythonpath`.
"""

# Charts and tables need pandas and plotly. Each browser session runs its script in
# a thread of its own, and on a fresh server two sessions that drew their first
# chart at the same moment once got "partially initialized module 'pandas'"
# (the attack of the reliability issue). Imported here, they load while this
# package loads, under its import lock, before any page draws anything: app.py
# imports `ui` first in every session.
import pandas  # noqa: E402, F401
import plotly.graph_objects  # noqa: E402, F401
