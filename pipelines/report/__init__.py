"""The data stewards' report page, ``report.html``.

``view`` builds the typed view model from the discrepancies, summary.json and the unmapped codes;
``html`` renders it with the Jinja2 templates in ``templates/`` and inlines ``assets/`` so the page
stays one self-contained file; ``charts`` places the shapes of its inline SVG charts; ``palette``
holds its colours.
"""
