"""Pure settlement rules (SPEC §9): catalogue, policy book and the fund/account/cash split.

Stdlib and gateway.domain only; loaders take text or parsed data, never paths.
"""

from rules.catalogue import Catalogue, CatalogueItem
from rules.params import PinCaps, Policy
from rules.policy import NoPolicy, PolicyBook, PolicyRule
from rules.pricing import FeeLine, PricedLine, UnknownItem, price_lines
from rules.split import LineSplit, PersonYear, Split, fund_details, split

__all__ = [
    "Catalogue",
    "CatalogueItem",
    "FeeLine",
    "LineSplit",
    "NoPolicy",
    "PersonYear",
    "PinCaps",
    "Policy",
    "PolicyBook",
    "PolicyRule",
    "PricedLine",
    "Split",
    "UnknownItem",
    "fund_details",
    "price_lines",
    "split",
]
