"""N2D2's text files, both directions: ``write`` (weights, biases, quantised weights, masks of
a network), ``read`` (``-w`` import) and ``masks`` (one cell's ``_masks.syntxt``)."""
