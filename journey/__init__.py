"""The `journey` command and the composition root that wires the engine to its stores."""
