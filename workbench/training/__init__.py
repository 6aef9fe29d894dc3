"""Training the real/fake classifier: data and crops, self-blending, augmentation, the run
loop, calibration and thresholds, and the model card of what it made."""
