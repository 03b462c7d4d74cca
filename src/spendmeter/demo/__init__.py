"""The demo: simulated agents that call a fake provider (`spendmeter.testing`) through the real SDKs."""
