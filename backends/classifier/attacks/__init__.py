"""Membership-inference attacks and unlearning metrics for classifiers.

- :mod:`.roc`: ROC curves, AUC, TPR / precision at low FPR (shared by every attack);
- :mod:`.metrics`: accuracies, per-class accuracy, forget-class output distribution, TV distance;
- :mod:`.svc_mia`: OPTML "MIA-efficacy" (SVC on confidence features; spec section 7);
- :mod:`.umia`: U-MIA (Kurmanji et al.; spec section 2);
- :mod:`.mia_nn`: MIA-NN / CMIA nearest-neighbour-class leakage (spec section 1.1);
- :mod:`.ulira`: U-LiRA per-example likelihood ratio (Hayes et al.; spec section 1.3);
- :mod:`.configs`: their typed configs (light: no torch).

This package's ``__init__`` imports nothing, so importing ``configs`` stays torch-free.
"""
