"""Controllers: one module per controller."""
