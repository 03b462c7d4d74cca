"""Settings (arguments + environment), the pipeline they build, and its life cycle (init, shutdown)."""
