"""TensorBoard side of Insight: loader (entry point), plugin (routes), queries, HTTP helpers, assets."""
