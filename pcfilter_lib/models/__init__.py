"""Neural network models, built with the Keras functional API and keras.ops."""
