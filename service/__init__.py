"""autocall-bridge: e-commerce events in, OMICall automated voice calls out."""
