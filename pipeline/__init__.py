"""simsiam-tfx: the TFX pipeline definition, its runners and the command line."""
