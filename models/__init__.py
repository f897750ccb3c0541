"""Model core: pure Keras 3 (keras.ops), runs on the TensorFlow and JAX backends."""
