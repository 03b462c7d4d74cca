"""What spendmeter exports, named once: the metric contract, the label policy, the span attribute names."""
