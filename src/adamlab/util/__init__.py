"""Small helpers every layer may use (layer ``util``, the bottom: it imports nothing from adamlab).

- :mod:`adamlab.util.files`: the one atomic file writer (one permission policy) and the one JSON writer;
- :mod:`adamlab.util.registry`: the one registry mechanism (names -> entries, discovered by package);
- :mod:`adamlab.util.stats`: the one summary-statistics convention over seeds.

Layers, bottom to top (imports only go down; docs/architecture.md): util < plotting < functional
< optim < dissect < data < problems < runs < store < selection < runner < analysis < claims < reproduce
< commands < cli.
"""
