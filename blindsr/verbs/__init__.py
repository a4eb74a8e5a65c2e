"""One module per command-line verb; each has ``run(cfg) -> exit code``."""
