"""The console's screens, one module (and one .tcss scoped to its screen type) each."""
