"""Provider adapters and the patches that feed them."""
