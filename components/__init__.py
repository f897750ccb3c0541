"""TFX components and the module files (run_fn, preprocessing_fn) the pipeline uses."""
