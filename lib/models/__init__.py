"""Models: what a network is and how it answers.

Owns the model zoo and the layer-by-layer builder (`architectures`: specs, shape inference,
parameter formulas, `build_model`), checking and loading `.keras` files safely (`modelfiles`),
predicting (`inference`), looking inside a network (`inside`: activations, saliency), choosing
which test images to show (`predictions`), and exports checked against Keras (`exports`: SavedModel,
TFLite, ONNX, made in a child process; `snippets`: runnable code per format; `webpage`: the ONNX
model in a static page that classifies drawings with onnxruntime-web).

May import: lib.i18n, lib.data. Keras/TensorFlow only inside functions.
"""
