"""From usage to cost: the rate card, the ownership rules, FX rates and budgets.

Each is a CSV file named by a setting (`PRICING__RATE_CARD`, `PRICING__OWNERS`,
`PRICING__FX_RATES`, `PRICING__BUDGETS`; `PRICING__CURRENCY` is the reporting currency, default
USD). They are read and checked whole before a models build touches the warehouse: any mistake is
a `ConfigError` naming the file, the line and the fix. Then the model runner writes them into the
warehouse as its seeds (`analytics.rate_card`, `analytics.owners`, `analytics.fx_rates`,
`analytics.budgets`), and the digest of their content joins that of every model reading them, so
a changed card remakes `analytics.fct_daily_cost` whole: the whole history is priced again.

The formats, the units vocabulary and the rules are in docs/pricing.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from pipelines.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_RATE_CARD = ROOT / "pricing" / "rate_card.example.csv"
"""The rate card when PRICING__RATE_CARD is unset: a template whose rows are commented out."""
DEFAULT_CURRENCY = "USD"
UNALLOCATED = "unallocated"
"""The team of a resource no ownership rule matches."""

# -- the vocabulary -----------------------------------------------------------------------------
UNITS: Dict[str, Dict[str, float]] = {
    "cu_seconds": {"cu_seconds": 1, "CU-hour": 3600},
    "seconds": {"seconds": 1, "hour": 3600},
    "bytes": {"bytes": 1, "GB": 10 ** 9, "GiB": 2 ** 30, "TB": 10 ** 12, "TiB": 2 ** 40},
    "byte_months": {"byte_months": 1, "GB-month": 10 ** 9, "GiB-month": 2 ** 30},
    "byte_hours": {"byte_hours": 1, "GB-hour": 10 ** 9, "GiB-hour": 2 ** 30},
    "branch_months": {"branch_months": 1, "branch-month": 1},
    "rows": {"rows": 1, "1k rows": 1000, "1M rows": 10 ** 6},
    "hours": {"hours": 1, "hour": 1},
}
"""Per unit of the fact: the pricing units a rate card may use, each with how many of the fact's
units make one of it (the fact's quantity is divided by it before pricing). A unit `<x>_hours`
of Rafay's parameters (label value x hours) takes its own name or `hour`."""

METRICS: Dict[str, Dict[str, str]] = {
    "neon": {
        "compute_unit_seconds": "cu_seconds",
        "root_branch_bytes_month": "byte_months",
        "child_branch_bytes_month": "byte_months",
        "instant_restore_bytes_month": "byte_months",
        "snapshot_storage_bytes_month": "byte_months",
        "public_network_transfer_bytes": "bytes",
        "private_network_transfer_bytes": "bytes",
        "extra_branches_month": "branch_months",
        "active_time_seconds": "seconds",
        "compute_time_seconds": "seconds",
        "written_data_bytes": "bytes",
        "synthetic_storage_size_bytes": "bytes",
        "data_storage_bytes_hour": "byte_hours",
    },
    "adverity": {"total_rows": "rows", "unique_rows": "rows"},
    "rafay": {"usage_hours": "hours"},
    "bronto": {},
}
"""Per provider, its metrics and the unit of each in the fact (docs/data_dictionary.md)."""
METRIC_PATTERNS: Dict[str, Tuple[re.Pattern, Optional[str]]] = {
    "rafay": (re.compile(r"^[a-z][a-z0-9_]*_hours$"), None),  # the unit is the metric's name
    "bronto": (re.compile(r"^[a-z][a-z0-9_]*_bytes$"), "bytes"),
}
"""Metrics named after what the API sends (Rafay's parameters, Bronto's usage types)."""

CURRENCIES = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW
KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD
NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD
SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES
VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
""".split())
"""ISO 4217 codes of the currencies in circulation."""


def unit_of(provider: str, metric: str) -> Optional[str]:
    """The fact's unit of a provider's metric; None for a metric the provider does not have."""
    known = METRICS.get(provider, {})
    if metric in known:
        return known[metric]
    pattern = METRIC_PATTERNS.get(provider)
    if pattern and pattern[0].match(metric):
        return pattern[1] or metric
    return None


def pricing_units(unit: str) -> Dict[str, float]:
    """The pricing units a fact of `unit` may be priced in, each with its size in `unit`."""
    if unit in UNITS:
        return UNITS[unit]
    if unit.endswith("_hours"):
        return {unit: 1, "hour": 1}
    return {unit: 1}


FOCUS_UNITS: Dict[str, str] = {
    "cu_seconds": "CU-Seconds", "CU-hour": "CU-Hours", "seconds": "Seconds", "hour": "Hours", "hours": "Hours",
    "bytes": "B", "GB": "GB", "GiB": "GiB", "TB": "TB", "TiB": "TiB",
    "byte_months": "B-Months", "GB-month": "GB-Months", "GiB-month": "GiB-Months",
    "byte_hours": "B-Hours", "GB-hour": "GB-Hours", "GiB-hour": "GiB-Hours",
    "branch_months": "Branch-Months", "branch-month": "Branch-Months",
    "rows": "Rows", "1k rows": "1000 Rows", "1M rows": "1000000 Rows",
}
"""Each unit as FOCUS's UnitFormat spells it (analytics.focus's ConsumedUnit and PricingUnit)."""


def focus_unit(unit: str) -> str:
    """`unit` in FOCUS's UnitFormat; a Rafay `<parameter>_hours` becomes `<Parameter>-Hours`."""
    if unit in FOCUS_UNITS:
        return FOCUS_UNITS[unit]
    if unit.endswith("_hours"):
        words = unit[: -len("_hours")].replace("_", " ")
        return words[:1].upper() + words[1:] + "-Hours"
    return unit


# -- reading the files --------------------------------------------------------------------------
@dataclass
class Line:
    number: int
    values: Dict[str, str]


class CsvFile:
    """One CSV file of settings: a header row, then rows; blank lines and lines starting with
    `#` are comments. Every mistake is a ConfigError naming the file and line."""

    def __init__(self, setting: str, path: Path, required: Sequence[str], optional: Sequence[str] = ()):
        self.setting, self.path = setting, path
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ConfigError(f"{setting}={path}: no such file; set {setting} to the path of a CSV file "
                              f"(formats in docs/pricing.md)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{setting}={path}: cannot be read ({exc}); give a readable UTF-8 CSV file") from None
        numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1)
                    if line.strip() and not line.lstrip().startswith("#")]
        if not numbered:
            raise ConfigError(f"{path}, line 1: no header row; start the file with {','.join(required)}")
        header_line, header = numbered[0]
        columns = [name.strip() for name in next(csv.reader([header]))]
        missing = [name for name in required if name not in columns]
        unknown = [name for name in columns if name not in required and name not in optional]
        if missing or unknown or len(set(columns)) != len(columns):
            problem = (f"missing column {missing[0]}" if missing else f"unknown column {unknown[0]!r}" if unknown
                       else "a column named twice")
            raise ConfigError(f"{path}, line {header_line}: {problem}; the header is "
                              f"{','.join(list(required) + [f'[{name}]' for name in optional])}")
        self.lines: List[Line] = []
        for number, text_line in numbered[1:]:
            cells = [cell.strip() for cell in next(csv.reader([text_line]))]
            if len(cells) != len(columns):
                self.fail(number, f"{len(cells)} fields where the header has {len(columns)}",
                          f"give {','.join(columns)}")
            self.lines.append(Line(number, dict(zip(columns, cells))))

    def fail(self, line: int, problem: str, fix: str):
        raise ConfigError(f"{self.path}, line {line}: {problem}; {fix}")

    def day(self, line: Line, column: str, blank: bool = False) -> Optional[dt.date]:
        value = line.values.get(column, "")
        if not value and blank:
            return None
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise ValueError
            return dt.date.fromisoformat(value)
        except ValueError:
            self.fail(line.number, f"{column} {value!r} is not a day", "write it as YYYY-MM-DD"
                      + (" or leave it blank" if blank else ""))

    def month(self, line: Line, column: str) -> dt.date:
        value = line.values.get(column, "")
        match = re.fullmatch(r"(\d{4})-(\d{2})", value)
        if not match or not 1 <= int(match.group(2)) <= 12:
            self.fail(line.number, f"{column} {value!r} is not a month", "write it as YYYY-MM")
        return dt.date(int(match.group(1)), int(match.group(2)), 1)

    def number(self, line: Line, column: str, positive: bool = False) -> float:
        value = line.values.get(column, "")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0 or (positive and number == 0):
            self.fail(line.number, f"{column} {value!r} is not a {'positive' if positive else 'non-negative'} number",
                      f"give {column} as a plain decimal, e.g. 0.25")
        return number

    def currency(self, line: Line, column: str = "currency") -> str:
        value = line.values.get(column, "")
        if value not in CURRENCIES:
            self.fail(line.number, f"{column} {value!r} is not an ISO 4217 currency code",
                      "write a three-letter code in capitals, e.g. USD or EUR")
        return value


def _setting(key: str) -> Optional[str]:
    import dlt

    value = dlt.config.get(f"pricing.{key}")
    if value is None:
        value = dlt.secrets.get(f"pricing.{key}")
    return None if value is None or not str(value).strip() else str(value).strip()


def _path(key: str) -> Optional[Path]:
    value = _setting(key)
    return Path(value).expanduser() if value else None


def reporting_currency() -> str:
    value = _setting("currency") or DEFAULT_CURRENCY
    if value not in CURRENCIES:
        raise ConfigError(f"PRICING__CURRENCY={value!r} is not an ISO 4217 currency code; "
                          "set it to a three-letter code in capitals, e.g. USD")
    return value


# -- the rate card ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Price:
    provider: str
    metric: str
    account_id: Optional[str]
    unit: str
    pricing_unit: str
    units_per_pricing_unit: float
    unit_price: float
    currency: str
    effective_from: dt.date
    effective_to: Optional[dt.date]
    line: int


RATE_CARD_COLUMNS = ("provider", "metric", "pricing_unit", "unit_price", "currency", "effective_from", "effective_to")


def rate_card(path: Optional[Path] = None) -> List[Price]:
    """The rate card's prices, checked: known provider and metric, a pricing unit of the
    metric's unit, a non-negative price, a currency code, inclusive days in order, and no two
    rows of one provider, metric and account on the same day."""
    import sources

    setting = "PRICING__RATE_CARD"
    path = path or _path("rate_card") or EXAMPLE_RATE_CARD
    card = CsvFile(setting, path, RATE_CARD_COLUMNS, ("account_id",))
    providers = sources.names()
    prices: List[Price] = []
    for line in card.lines:
        values = line.values
        provider, metric = values["provider"], values["metric"]
        if provider not in providers:
            card.fail(line.number, f"unknown provider {provider!r}", f"use one of {', '.join(providers)}")
        unit = unit_of(provider, metric)
        if unit is None:
            known = ", ".join(sorted(METRICS.get(provider, {}))) or "its metrics"
            card.fail(line.number, f"{provider} has no metric {metric!r}",
                      f"use a metric of docs/data_dictionary.md's metrics table ({known})")
        units = pricing_units(unit)
        if values["pricing_unit"] not in units:
            card.fail(line.number, f"pricing_unit {values['pricing_unit']!r} is not a unit of {metric} (in {unit})",
                      f"use one of {', '.join(units)}")
        first = card.day(line, "effective_from")
        last = card.day(line, "effective_to", blank=True)
        if last is not None and last < first:
            card.fail(line.number, f"effective_to {last} is before effective_from {first}",
                      "give effective_to on or after effective_from (both days are inclusive)")
        prices.append(Price(provider, metric, values.get("account_id") or None, unit, values["pricing_unit"],
                            float(units[values["pricing_unit"]]), card.number(line, "unit_price"),
                            card.currency(line), first, last, line.number))
    by_key: Dict[tuple, List[Price]] = {}
    for price in prices:
        by_key.setdefault((price.provider, price.metric, price.account_id), []).append(price)
    for key, rows in by_key.items():
        rows.sort(key=lambda p: p.effective_from)
        for before, after in zip(rows, rows[1:]):
            if before.effective_to is None or before.effective_to >= after.effective_from:
                account = f" account {key[2]}" if key[2] else ""
                card.fail(max(before.line, after.line),
                          f"its period overlaps line {min(before.line, after.line)}'s for {key[0]} {key[1]}{account}",
                          f"end the earlier period the day before {after.effective_from}")
    return prices


# -- ownership ----------------------------------------------------------------------------------
OWNER_FIELDS = ("provider", "account_id", "resource_type", "resource_id")


@dataclass(frozen=True)
class Owner:
    patterns: Tuple[str, ...]
    team: str
    line: int
    priority: int = 0

    @property
    def specificity(self) -> Tuple[int, int]:
        """(per field: 2 exact, 1 a glob, 0 `*`, summed; literal characters): more wins."""
        kinds = sum(0 if p == "*" else 1 if _is_glob(p) else 2 for p in self.patterns)
        return kinds, sum(len(re.sub(r"[*?]|\[[^\]]*\]", "", p)) for p in self.patterns)


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def like_pattern(glob: str) -> str:
    """A glob (`*`, `?`) as a LIKE pattern with `\\` as its escape, the same on both engines."""
    out = []
    for char in glob:
        if char in "%_\\":
            out.append("\\" + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)


def owners(path: Optional[Path] = None) -> List[Owner]:
    """The ownership rules, most specific first (ties: the earlier line), each with its
    priority (higher wins)."""
    setting = "PRICING__OWNERS"
    path = path or _path("owners")
    if path is None:
        return []
    rules = CsvFile(setting, path, OWNER_FIELDS + ("team",))
    found: List[Owner] = []
    seen: Dict[Tuple[str, ...], int] = {}
    for line in rules.lines:
        patterns = tuple(line.values[name] or "*" for name in OWNER_FIELDS)
        for name, pattern in zip(OWNER_FIELDS, patterns):
            if "[" in pattern or "]" in pattern:
                rules.fail(line.number, f"{name} {pattern!r} uses [...]", "use only * and ? in patterns")
        team = line.values["team"]
        if not team:
            rules.fail(line.number, "team is empty", "name the team that owns the matching resources")
        if patterns in seen:
            rules.fail(line.number, f"the same patterns as line {seen[patterns]}", "keep one rule per pattern set")
        seen[patterns] = line.number
        found.append(Owner(patterns, team, line.number))
    ordered = sorted(found, key=lambda o: (o.specificity, -o.line))
    return [Owner(o.patterns, o.team, o.line, priority) for priority, o in enumerate(ordered, 1)][::-1]


def team_of(rules: Sequence[Owner], provider: str, account_id: str, resource_type: str, resource_id: str) -> str:
    """The team the rules give a resource (what analytics.fct_daily_cost says, in Python)."""
    from fnmatch import fnmatchcase

    for rule in sorted(rules, key=lambda o: -o.priority):
        if all(fnmatchcase(value, pattern) for value, pattern in zip((provider, account_id, resource_type, resource_id), rule.patterns)):
            return rule.team
    return UNALLOCATED


# -- FX rates -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    day: Optional[dt.date]
    month: Optional[dt.date]
    currency: str
    rate: float


def fx_rates(path: Optional[Path] = None, currency: Optional[str] = None) -> List[Rate]:
    """Rates to the reporting currency, by day (`YYYY-MM-DD`) or month (`YYYY-MM`)."""
    setting = "PRICING__FX_RATES"
    path = path or _path("fx_rates")
    currency = currency or reporting_currency()
    if path is None:
        return []
    table = CsvFile(setting, path, ("date", "currency", "rate"))
    rates: List[Rate] = []
    seen: Dict[tuple, int] = {}
    for line in table.lines:
        code = table.currency(line)
        value = line.values["date"]
        if re.fullmatch(r"\d{4}-\d{2}", value):
            day, month = None, table.month(line, "date")
        else:
            day, month = table.day(line, "date"), None
        if code == currency:
            table.fail(line.number, f"a rate for {code}, the reporting currency", "leave it out: its rate is 1")
        rate = table.number(line, "rate", positive=True)
        key = (day, month, code)
        if key in seen:
            table.fail(line.number, f"a second rate for {code} on {value} (line {seen[key]})", "keep one")
        seen[key] = line.number
        rates.append(Rate(day, month, code, rate))
    return rates


# -- budgets ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    scope: str
    scope_type: str
    scope_value: Optional[str]
    month: dt.date
    amount: float
    currency: str


def budgets(path: Optional[Path] = None, currency: Optional[str] = None) -> List[Budget]:
    """Budgets per scope (`all`, `team:<team>`, `provider:<provider>`) and month, in the
    reporting currency."""
    import sources

    setting = "PRICING__BUDGETS"
    path = path or _path("budgets")
    currency = currency or reporting_currency()
    if path is None:
        return []
    table = CsvFile(setting, path, ("scope", "month", "amount", "currency"))
    found: List[Budget] = []
    seen: Dict[tuple, int] = {}
    for line in table.lines:
        scope = line.values["scope"]
        kind, _, value = scope.partition(":")
        if scope == "all":
            kind, value = "all", None
        elif kind not in ("team", "provider") or not value:
            table.fail(line.number, f"scope {scope!r} is not all, team:<team> or provider:<provider>",
                       "write e.g. all, team:data or provider:neon")
        elif kind == "provider" and value not in sources.names():
            table.fail(line.number, f"unknown provider {value!r}", f"use one of {', '.join(sources.names())}")
        month = table.month(line, "month")
        amount = table.number(line, "amount", positive=True)
        code = table.currency(line)
        if code != currency:
            table.fail(line.number, f"currency {code} is not the reporting currency {currency}",
                       f"give the budget in {currency} (PRICING__CURRENCY)")
        key = (scope, month)
        if key in seen:
            table.fail(line.number, f"a second budget for {scope} in {month:%Y-%m} (line {seen[key]})", "keep one")
        seen[key] = line.number
        found.append(Budget(scope, kind, value, month, amount, code))
    return found


# -- the seeds ----------------------------------------------------------------------------------
def seeds():
    """The pricing tables the model runner writes into the warehouse ahead of every build, all
    read and checked first (a ConfigError leaves the warehouse as it was)."""
    from pipelines.models import Seed

    currency = reporting_currency()
    card, rules = rate_card(), owners()
    rates, plans = fx_rates(currency=currency), budgets(currency=currency)
    return [
        Seed("rate_card", (
            ("provider", "varchar"), ("metric", "varchar"), ("account_id", "varchar"), ("unit", "varchar"),
            ("pricing_unit", "varchar"), ("units_per_pricing_unit", "double precision"),
            ("unit_price", "double precision"), ("currency", "varchar"), ("effective_from", "date"),
            ("effective_to", "date"), ("line", "bigint"),
        ), [(p.provider, p.metric, p.account_id, p.unit, p.pricing_unit, p.units_per_pricing_unit, p.unit_price,
             p.currency, p.effective_from, p.effective_to, p.line) for p in card]),
        Seed("focus_units", (("unit", "varchar"), ("focus_unit", "varchar")), sorted(
            {(unit, focus_unit(unit)) for unit in FOCUS_UNITS} | {(p.unit, focus_unit(p.unit)) for p in card}
            | {(p.pricing_unit, focus_unit(p.pricing_unit)) for p in card})),
        Seed("owners", (
            ("provider_like", "varchar"), ("account_id_like", "varchar"), ("resource_type_like", "varchar"),
            ("resource_id_like", "varchar"), ("team", "varchar"), ("priority", "bigint"), ("line", "bigint"),
        ), [tuple(like_pattern(p) for p in o.patterns) + (o.team, o.priority, o.line) for o in rules]),
        Seed("fx_rates", (
            ("rate_date", "date"), ("rate_month", "date"), ("currency", "varchar"),
            ("reporting_currency", "varchar"), ("rate", "double precision"),
        ), [(None, None, currency, currency, 1.0)] + [(r.day, r.month, r.currency, currency, r.rate) for r in rates]),
        Seed("budgets", (
            ("scope", "varchar"), ("scope_type", "varchar"), ("scope_value", "varchar"), ("month", "date"),
            ("amount", "double precision"), ("currency", "varchar"),
        ), [(b.scope, b.scope_type, b.scope_value, b.month, b.amount, b.currency) for b in plans]),
    ]


# -- warnings, budget crossings, the FOCUS export -----------------------------------------------
def warnings(dest) -> List[str]:
    """Each `-- warning: <name>` query of sql/checks/*.sql that returns rows, as one line (its
    meaning, how many rows, the first few): what `make check` prints without failing."""
    from pipelines import models, warehouse

    found = []
    for folder in models.sql_dirs():
        for path in sorted((folder / models.CHECKS_DIR).glob("*.sql")):
            for chunk in re.split(r"^--\s*warning:\s*", path.read_text(), flags=re.M)[1:]:
                name, _, body = chunk.partition("\n")
                body = re.split(r"^--\s*(?:check|warning):", body, flags=re.M)[0]
                meaning = " ".join(line.lstrip("- ").strip() for line in body.splitlines() if line.startswith("--"))
                found.append((name.strip(), meaning.strip(), body.strip().rstrip(";")))
    lines = []
    with warehouse.sql_client(dest) as client:
        tables = warehouse.existing_tables(client)
        for name, meaning, sql in found:
            if any(f"{models.SCHEMA}.{table}" not in tables for table in re.findall(rf"\b{models.SCHEMA}\.([a-z_0-9]+)\b", sql)):
                continue
            with client.execute_query(sql) as cursor:
                columns = [column[0] for column in cursor.description]
                rows = cursor.fetchall()
            if rows:
                shown = "; ".join(", ".join(f"{c}={v}" for c, v in zip(columns, row)) for row in rows[:3])
                lines.append(f"warning {name}: {len(rows)} rows ({meaning}), e.g. {shown}")
    return lines


BUDGET_ALERTS = "analytics.budget_alerts"
"""Every budget crossing already named by new_budget_crossings(), so each is alerted once."""
CREATE_BUDGET_ALERTS = f"""
create table if not exists {BUDGET_ALERTS} (
    scope varchar not null,
    month date not null,
    threshold varchar not null,
    percent double precision,
    alerted_at timestamp not null
)
"""
THRESHOLDS = (("projected_80", "projected_over_80", "projected_percent_of_budget"),
              ("actual_100", "actual_over_100", "percent_of_budget"))
"""(name, the flag of analytics.budget_status, the percent it reports)."""


@dataclass(frozen=True)
class Crossing:
    scope: str
    month: dt.date
    threshold: str
    """projected_80 (the month's end projected at 80 % of the budget or more) or actual_100."""
    percent: float
    spend_to_date: float
    projected_spend: Optional[float]
    budget: float
    currency: str

    def text(self) -> str:
        what = ("is projected to reach" if self.threshold == "projected_80" else "has spent")
        return (f"budget {self.scope} {self.month:%Y-%m} {what} {self.percent:.0f}% of {self.budget:,.2f} "
                f"{self.currency} (spent {self.spend_to_date:,.2f})")


def new_budget_crossings(dest) -> List[Crossing]:
    """The thresholds of analytics.budget_status crossed and not named before, each remembered
    in analytics.budget_alerts as it is returned: a crossing is returned once, by the first call
    after the build that found it (the caller sends the alert)."""
    from pipelines import models, warehouse

    with warehouse.sql_client(dest) as client:
        if f"{models.SCHEMA}.budget_status" not in warehouse.existing_tables(client):
            return []
        client.execute_sql(CREATE_BUDGET_ALERTS)
        seen = {(scope, warehouse.as_date(month), threshold) for scope, month, threshold in
                client.execute_sql(f"select scope, month, threshold from {BUDGET_ALERTS}")}
        found: List[Crossing] = []
        for name, flag, percent in THRESHOLDS:
            rows = client.execute_sql(
                f"select scope, month, {percent}, spend_to_date, projected_spend, budget, currency "
                f"from {models.SCHEMA}.budget_status where {flag} order by scope, month")
            for scope, month, share, spend, projected, budget, currency in rows:
                month = warehouse.as_date(month)
                if (scope, month, name) not in seen:
                    found.append(Crossing(scope, month, name, float(share), float(spend),
                                          None if projected is None else float(projected), float(budget), currency))
        if found:
            now = warehouse.utc_now()
            with client.begin_transaction():
                warehouse.insert_rows(client, BUDGET_ALERTS, ("scope", "month", "threshold", "percent", "alerted_at"),
                                      [(c.scope, c.month, c.threshold, c.percent, now) for c in found])
    return found


FOCUS_COLUMNS = (
    "ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd", "ChargeCategory",
    "ChargeClass", "ChargeFrequency", "CommitmentDiscountStatus", "InvoiceId", "ChargeDescription", "BilledCost", "EffectiveCost", "ContractedCost",
    "ListCost", "ContractedUnitPrice", "BillingCurrency", "ConsumedQuantity", "ConsumedUnit", "PricingQuantity",
    "PricingUnit", "BillingAccountId", "BillingAccountName", "SubAccountId", "SubAccountName", "ResourceId",
    "ResourceName", "ResourceType", "ProviderName", "PublisherName", "InvoiceIssuerName", "ServiceName",
    "ServiceCategory", "ServiceSubcategory", "Tags", "x_Provider", "x_Metric",
)
"""analytics.focus's columns with FOCUS's spelling (Postgres folds them to lower case)."""


def export_focus(dest, path: Path) -> int:
    """analytics.focus as a CSV file with FOCUS's column names (timestamps in ISO 8601 UTC,
    `Z`), for focus-validator or a FinOps tool; the number of charges written."""
    from pipelines import warehouse

    count = 0
    with warehouse.sql_client(dest) as client, open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(FOCUS_COLUMNS)
        with client.execute_query(f"select {', '.join(FOCUS_COLUMNS)} from analytics.focus") as cursor:
            while True:
                rows = cursor.fetchmany(10000)
                if not rows:
                    break
                for row in rows:
                    writer.writerow([_focus_value(value) for value in row])
                    count += 1
    return count


def _focus_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    if isinstance(value, float):
        return repr(value)
    return str(value)
