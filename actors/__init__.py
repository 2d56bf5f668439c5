"""The actor host: the Thread actor, its state, and the run engine it drives."""
