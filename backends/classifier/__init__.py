"""Image classifiers: data, built-in models, training, and (later) unlearning methods and attacks."""
