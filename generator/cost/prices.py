"""The price snapshot (prices.json): load it, look a price up, refresh it from the AWS Price List bulk files.

Each price is keyed by what it charges ("nat_gateway_hour", "rds_instance_hour:db.t4g.micro") and carries its unit,
its source page, the Price List offer code, usage type and attribute filters that find it in a bulk offer file,
and a status: "transcribed, <date>, unverified" (copied from the pricing page without reaching it) or
"read, <date>, <offer file URL or path>, SKU <sku>" once refreshed.

Bulk offer files (https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-ppslong.html): per offer and
region, `<base>/<offer>/current/<region>/index.json`, a JSON object with `products` (sku -> attributes) and
`terms.OnDemand` (sku -> term -> priceDimensions, each with `pricePerUnit.USD` and a `beginRange`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from generator.errors import InputError

SNAPSHOT = Path(__file__).resolve().parent / "prices.json"
PRICE_LIST_BASE = "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws"
FETCH_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Price:
    key: str
    usd: float  # per one `unit`
    unit: str
    what: str
    source: str  # the pricing page
    offer: str  # Price List offer code
    usage_type: str
    status: str  # "transcribed, <date>, unverified" or "read, <date>, ..."


@dataclass(frozen=True)
class Snapshot:
    date: str
    hours_per_month: float
    regions: tuple[str, ...]
    prices: dict[tuple[str, str], Price]  # (region, key) -> Price; never mutated after loading

    def price(self, region: str, key: str) -> Price:
        found = self.prices.get((region, key))
        if found is None:
            if region not in self.regions:
                raise InputError(f"the price snapshot has no prices for region {region}; it holds "
                                 f"{', '.join(self.regions)} (add the region to generator/cost/prices.json, or "
                                 "refresh it: python -m generator cost --refresh-prices)")
            raise InputError(f"the price snapshot has no price {key!r} in {region} (add it to "
                             "generator/cost/prices.json with its source, or refresh it)")
        return found

    def has(self, region: str, key: str) -> bool:
        return (region, key) in self.prices


def load(path: Path = SNAPSHOT) -> Snapshot:
    raw = _read_json(path, "price snapshot")
    try:
        prices = {(region, key): Price(key, float(p["price"]), p["unit"], p["what"], p["source"], p["offer"],
                                       p["usage_type"], p["status"])
                  for region, table in raw["regions"].items() for key, p in table.items()}
        return Snapshot(str(raw["date"]), float(raw["hours_per_month"]), tuple(sorted(raw["regions"])), prices)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InputError(f"{path}: not a price snapshot ({type(e).__name__}: {e}); accepted: the format of "
                         "generator/cost/prices.json") from None


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}") from None
    except ValueError as e:
        raise InputError(f"{what} {path} is not valid JSON: {e}") from None


# ------------------------------------------------------------------------------------------------ refreshing

@dataclass(frozen=True)
class Found:
    usd: float
    sku: str
    where: str


def offer_location(base: str, offer: str, region: str) -> str:
    """Where the bulk offer file of `offer` in `region` lies under `base` (a URL, or a directory mirroring it)."""
    return f"{base.rstrip('/')}/{offer}/current/{region}/index.json"


def fetch_offer(location: str) -> dict | None:
    """A bulk offer file from a URL or a path; None for a path that does not exist (a directory holding only some
    offers); an unreachable URL or unreadable file is an InputError naming it."""
    if "://" not in location:
        if not Path(location).exists():
            return None
        offer = _read_json(Path(location), "offer file")
    else:
        try:
            with urllib.request.urlopen(location, timeout=FETCH_TIMEOUT_SECONDS) as response:
                offer = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise InputError(f"cannot read the Price List offer file {location}: {reason}; the committed snapshot "
                             "still serves (offline, pass --from DIR holding <offer>/current/<region>/index.json "
                             "files downloaded elsewhere)") from None
    if not isinstance(offer, dict) or not isinstance(offer.get("products"), dict):
        raise InputError(f"{location} is not a Price List bulk offer file (no products)")
    return offer


def first_priced_dimension(terms: dict) -> tuple[float, str] | None:
    """(USD, rate code) of the lowest non-zero tier among a SKU's On-Demand terms: free tiers are not priced."""
    dimensions = [d for term in terms.values() for d in (term.get("priceDimensions") or {}).values()]
    priced = []
    for d in dimensions:
        try:
            usd, begin = float(d["pricePerUnit"]["USD"]), float(d.get("beginRange", 0))
        except (KeyError, TypeError, ValueError):
            continue
        if usd > 0:
            priced.append((begin, usd, d.get("rateCode", "")))
    return (min(priced)[1], min(priced)[2]) if priced else None


def find(offer: dict, usage_type: str, filters: dict[str, str], where: str) -> Found | None:
    """The On-Demand price of the one product with this usage type and attributes; None when there is none."""
    on_demand = (offer.get("terms") or {}).get("OnDemand") or {}
    for sku in sorted(offer["products"]):
        attributes = offer["products"][sku].get("attributes") or {}
        if attributes.get("usagetype") != usage_type:
            continue
        if any(attributes.get(k) != v for k, v in filters.items()):
            continue
        priced = first_priced_dimension(on_demand.get(sku) or {})
        if priced is not None:
            return Found(priced[0], sku, where)
    return None


def refresh(snapshot: dict, base: str, today: str | None = None) -> tuple[dict, list[str], list[str]]:
    """A copy of the raw snapshot with every price found in the offer files under `base` read afresh; also the
    keys updated and the keys not found (kept as they were). Each offer file is fetched once."""
    today = today or date.today().isoformat()
    offers: dict[str, dict | None] = {}
    out = json.loads(json.dumps(snapshot))
    updated, missing = [], []
    for region, table in sorted(out["regions"].items()):
        for key, p in sorted(table.items()):
            location = offer_location(base, p["offer"], region)
            if location not in offers:
                offers[location] = fetch_offer(location)
            offer = offers[location]
            found = None if offer is None else find(offer, p["usage_type"], p.get("filters") or {}, location)
            if found is None:
                missing.append(f"{region} {key}")
                continue
            p["price"] = found.usd
            p["status"] = f"read, {today}, {found.where}, SKU {found.sku}"
            updated.append(f"{region} {key}")
    if updated:
        out["date"] = today
    return out, updated, missing


def write(snapshot: dict, path: Path) -> None:
    path.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n", encoding="utf-8")
