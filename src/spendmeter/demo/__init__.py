"""The demo: a local provider-compatible server and simulated agents that call it through the real SDKs."""
