"""Your own preference data in one command (``hetrlhf fit``; ``hr.report``).

``hetrlhf.data.preferences`` reads the file; ``analysis`` fits both models, tests
"all annotators equally rational", puts intervals on rewards and rationality and ranks
the items in significance groups; ``files`` writes report.md/.html/.json and the plots.
"""
