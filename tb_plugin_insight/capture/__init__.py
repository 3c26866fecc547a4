"""Torch side of Insight: choosing layers, hooking them, and reducing tensors on their device."""
