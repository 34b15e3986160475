"""Training: the shared negative sampler, the seed function and the BPR training loop."""
