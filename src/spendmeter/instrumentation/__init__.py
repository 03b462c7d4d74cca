"""How SDK calls reach the recorder: the patch table (`patches`), the provider-blind hooks (`hooks`), what
the SDK returned observed (`observe`), and the observe-only stream proxies (`streams`).

(Named `instrumentation`, not `instrument`, because `spendmeter.instrument()` is a public function and a
subpackage of the same name would replace it as an attribute of the package.)
"""
