"""The demo: deterministic POWR data with planted defects (``data``) and the one-command demo
(``run``)."""
