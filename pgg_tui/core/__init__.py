"""The core both front ends call: operations, views, presentation, export and the launcher.

No Textual here (an import-linter contract holds it): the CLI and the app are two thin skins over
these functions, so a fact such as a column, an argv or a liveness rule exists once.
"""
