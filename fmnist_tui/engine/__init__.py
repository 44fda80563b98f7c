"""The training engine: Lightning, no textual.

Import the pieces from their modules (`fmnist_tui.engine.runner` etc.); this package
imports nothing heavy so that `fmnist_tui.engine.events` stays cheap.
"""
