"""Models: what a network is and how it answers.

Owns the model zoo and the layer-by-layer builder (`architectures`: specs, shape inference,
parameter formulas, `build_model`), checking and loading `.keras` files safely (`modelfiles`),
predicting (`inference`), looking inside a network (`inside`: activations, saliency) and choosing
which test images to show (`predictions`).

May import: lib.data. Keras/TensorFlow only inside functions.
"""
