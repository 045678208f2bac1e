"""Top layer, the command line: main (the parser) over the command tables of library (render,
deploy, migrate, version, protocol), ops (status, top, events, task, workflow, dead-letters),
worker and demo/ (the demo, with its agents); shared helpers in common, rich views in views.
Imports every layer below; nothing imports it.
"""
