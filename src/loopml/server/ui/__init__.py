"""The web UI of loopml server: pages rendered on the server (Jinja2) from the workspace's
operations, htmx for the parts that update in place, uPlot for long metric series and Plotly
for the rest. Every script and style ships in ``static/``: the UI needs no network.

The UI is an interface like the CLI: it calls the operations and formats what they return,
under the same tokens and roles as the API (see docs/ui.md).
"""

from loopml.server.ui.routes import add_ui

__all__ = ["add_ui"]
