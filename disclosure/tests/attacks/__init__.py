"""The attack suite (issue 15): what a careful researcher can learn of a small group from the numbers the portal
releases, measured on GiBleed with the truth from the engine.

Each test generates definitions at a site with the site's own code (``site.py``), releases them through the
portal's layer exactly as a researcher sees them (``portal.py``), lets the attacker add and subtract released
numbers, and counts how often that gives a small group's true size. It asserts that the rate stays within what the
ptable allows by chance (``library.py``: the chance of each instance from the ptable's rows, plus three simulated
standard deviations), and that with exact counts the same attack recovers every group — so the attack is real and
only the perturbation stops it. docs/privacy.md ("The attack suite") quotes the measured rates.
"""
