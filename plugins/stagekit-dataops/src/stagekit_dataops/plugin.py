"""The ``dataops`` plugin: registers the ingestion stages, from raw price files to the returns matrix.

Registering imports nothing heavy: stage functions are named lazily (``"stagekit_dataops.stages:..."``)
and so are their contracts (``"stagekit_dataops.schemas:Prices"``) — pandera alone takes most of a second
to import, so stagekit imports the schemas only when a contract is first checked (or compared).

The DAG these declarations build::

    raw_dir -> read_raw_prices -> raw_prices (L0) -> clean_prices -> prices (L1)
            -> align_calendar -> aligned_prices (L2) -> compute_features -> features (L3)
            -> build_returns_matrix -> returns, volume (L4)
    all of them -> validate_ingestion -> ingestion_report
"""

from __future__ import annotations

from collections.abc import Callable

from stagekit import Stage, hookimpl, stage

_STAGES = "stagekit_dataops.stages"
_SCHEMAS = "stagekit_dataops.schemas"
TAGS = ("dataops", "ingestion")

#: the contract of each artifact, by lazy reference; the same one guards its producer and its consumers
CONTRACTS = {
    "raw_prices": f"{_SCHEMAS}:RawPrices",
    "prices": f"{_SCHEMAS}:Prices",
    "aligned_prices": f"{_SCHEMAS}:AlignedPrices",
    "features": f"{_SCHEMAS}:Features",
    "returns": f"{_SCHEMAS}:ReturnsMatrix",
    "volume": f"{_SCHEMAS}:VolumeMatrix",
    "ingestion_report": f"{_SCHEMAS}:IngestionReport",
}


def _stage(name: str, requires: list[str], provides: list[str], description: str,
           params: dict[str, object] | None = None) -> Stage:
    return stage(
        f"{_STAGES}:{name}", requires=requires, provides=provides, params=params or {}, tags=TAGS,
        description=description,
        inputs={a: CONTRACTS[a] for a in requires if a in CONTRACTS},
        outputs={a: CONTRACTS[a] for a in provides if a in CONTRACTS},
    )


def dataops_stages() -> list[Stage]:
    """Every stage this plugin registers (also handy to build a pipeline in code)."""
    return [
        _stage("read_raw_prices", ["raw_dir"], ["raw_prices"],
               "L0: read raw daily price files (CSV, parquet) as text, with file and row provenance",
               {"on_bad_file": "reject"}),
        _stage("clean_prices", ["raw_prices"], ["prices"],
               "L1: type, reject unusable rows, deduplicate, sort by symbol and date"),
        _stage("align_calendar", ["prices"], ["aligned_prices"],
               "L2: align each symbol to the business-day calendar, marking gaps"),
        _stage("compute_features", ["aligned_prices"], ["features"],
               "L3: returns, log returns, rolling volatility, dollar volume", {"window": 20}),
        _stage("build_returns_matrix", ["features"], ["returns", "volume"],
               "L4: returns and volume matrices, dates x symbols"),
        _stage("validate_ingestion",
               ["raw_prices", "prices", "aligned_prices", "features", "returns", "volume"],
               ["ingestion_report"],
               "Report per file and level what was rejected, and check that the levels agree",
               {"max_rejected_fraction": 1.0}),
    ]


def bulk_stages() -> list[Stage]:
    """An alternative source of ``returns``: a stored parquet dataset, read whole or streamed with Ray.

    A pipeline that gives ``prices_dataset`` gets this stage; one that gives ``raw_dir`` (or ``workspace``)
    gets the L0-L4 chain (targets pull in only the source whose inputs can be had)."""
    return [
        stage("stagekit_dataops.bulk:load_returns_matrix", requires=["prices_dataset"], provides=["returns"],
              params={"engine": "pandas"}, tags=(*TAGS, "bulk"), outputs={"returns": CONTRACTS["returns"]},
              description="L4 returns from a parquet dataset of long rows; engine pandas or ray (stagekit-ray)"),
    ]


def demo_stages() -> list[Stage]:
    """The demo's data source: it creates ``raw_dir``, so leave it out when you pass ``raw_dir`` yourself."""
    return [
        stage("stagekit_dataops.synthetic:generate_raw_prices", requires=["workspace"], provides=["raw_dir"],
              params={"symbols": 500, "years": 10, "seed": 7}, tags=("demo",),
              description="Demo data: deterministic synthetic daily prices in <workspace>/data/raw (made once)"),
    ]


@hookimpl
def stagekit_register_stages(register: Callable[[Stage], None]) -> None:
    for s in [*dataops_stages(), *bulk_stages(), *demo_stages()]:
        register(s)
