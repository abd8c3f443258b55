"""kbench conformance suite: black-box checks of Kafka semantics (see conformance/README.md).

Modules: :mod:`conformance.verdicts` (PASS/FAIL/N/A/RECORD helpers), :mod:`conformance.clients`
(client factories, deadlines, produce/consume helpers), :mod:`conformance.timings` (HDR timings),
:mod:`conformance.report` (report.json / report.md / junit.xml / .hgrm, matrix),
:mod:`conformance.plugin` (pytest hooks), :mod:`conformance.runner` (entry points for the CLI),
:mod:`conformance.proxy` (loopback TCP proxy that can cut connections).
"""
