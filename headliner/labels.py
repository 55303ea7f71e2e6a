"""Class labels in terms people understand: country names for ISO codes (from pycountry, a
maintained library, not a hand table), or the spec's own display names."""

from __future__ import annotations

from headliner.spec import UseCaseSpec


def class_display_names(spec: UseCaseSpec) -> list[str]:
    """A display name per class, in the spec's class order."""
    target = spec.target
    if target.class_names == "iso3166":
        import pycountry

        names = []
        for code in target.classes:
            country = pycountry.countries.get(alpha_2=code)
            names.append(
                target.display_names.get(code)
                or getattr(country, "common_name", None)
                or (country.name if country else code)
            )
        return names
    return [target.display_names.get(c, c) for c in target.classes]
