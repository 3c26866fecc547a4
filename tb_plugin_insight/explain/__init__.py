"""Maths shared by CAMs and saliency: what to explain (targets) and how to get gradients safely."""
