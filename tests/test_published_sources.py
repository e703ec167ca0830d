"""Every published row has its provenance in docs/published_sources.md, and the rows load with their numbers."""

from pathlib import Path

import pandas as pd

from cca_bench.results import published_frame

SOURCES = Path(__file__).resolve().parents[1] / "docs" / "published_sources.md"
STATUSES = {"primary", "unverified"}


def provenance_rows() -> list[dict]:
    """The rows of the table under '## Every row of `published.csv`' as dicts (method, dataset, protocol, status)."""
    section = SOURCES.read_text(encoding="utf-8").split("## Every row of `published.csv`", 1)[1]
    table = section.split("\n\n|", 1)[1].split("\n\n", 1)[0].splitlines()  # the first table of the section
    table[0] = "|" + table[0]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in table[2:]]


def test_every_published_row_has_its_provenance_and_no_other():
    rows = provenance_rows()
    assert rows and {row["status"] for row in rows} <= STATUSES
    documented = [(row["method"], row["dataset"], row["protocol"]) for row in rows]
    frame = published_frame()
    in_csv = list(zip(frame["Method"], frame["Dataset"], frame["Protocol"]))
    assert len(set(documented)) == len(documented) and sorted(documented) == sorted(in_csv)


def test_readme_rows_carry_the_mean_ranks_their_readme_published():
    frame = published_frame()
    row = frame[frame["Method"] == "CCA numberbatch + InceptionResNetV2"].iloc[0]
    assert (row["i2t R@1"], row["i2t MedR"], row["i2t MeanR"]) == (22.1, 7.0, 28.4)
    assert (row["t2i R@1"], row["t2i MedR"], row["t2i MeanR"]) == (18.4, 7.0, 30.1)
    w2v = frame[(frame["Method"] == "CCA word2vec + VGG19") & (frame["Dataset"] == "flickr30k")].iloc[0]
    assert (w2v["i2t R@1"], w2v["i2t R@10"], w2v["i2t MeanR"], w2v["t2i R@1"], w2v["t2i MedR"]) == (
        21.0,
        56.7,
        42.5,
        16.5,
        10.0,
    )
    readme_rows = frame[frame["Source"] == "'text-image-embeddings' README"]
    assert len(readme_rows) == 10 and readme_rows[["i2t MeanR", "t2i MeanR"]].notna().all().all()
    kiros = frame[frame["Method"] == "VSE (Kiros repo code)"]
    assert set(kiros["Features"]) == {"VGG19 (1 crop)"} and set(kiros["Protocol"]) == {"full", "1k"}
    assert pd.isna(kiros["i2t MeanR"]).all()  # the README has no mean rank
