import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.identity import classify, luhn_digit, with_identity

AS_OF = dt.date(2026, 1, 15)


def test_spec_worked_example():
    assert luhn_digit("811218987") == 6
    assert classify("198112189876", AS_OF).valid
    assert classify("198112189877", AS_OF).reason == "check digit does not match"


def test_spec_reserve_number_examples_and_kinds():
    for v in ("19810829M071", "19450829K088", "19930829X802"):
        c = classify(v, AS_OF)
        assert c.valid and c.kind == "RESNR" and c.sex is None
    samnr_body = "8112789870"[:9]
    samnr = "19" + samnr_body + str(luhn_digit(samnr_body))
    c = classify(samnr, AS_OF)
    assert c.kind == "SAMNR" and c.valid and c.birth_date == dt.date(1981, 12, 18)


def test_invalid_forms():
    assert classify("20910101" + "1234", AS_OF).valid is False  # future (or bad digit)
    body = "9102310123"[:9]
    assert classify("19" + body + str(luhn_digit(body)), AS_OF).reason == "no such calendar date"
    body = "910101012"
    assert classify("20" + body + str(luhn_digit(body)), dt.date(2026, 1, 15)).reason == "date in the future"
    assert classify("19810829M080", AS_OF).reason == "reserve number serial does not fit its sex letter"
    assert classify("1981121898", AS_OF).valid is False
    assert classify("198112189876", AS_OF, declared="samnr").reason == "declared type disagrees with the form"


identity_text = st.one_of(
    st.text(alphabet="0123456789KMX", min_size=0, max_size=13),
    st.builds(
        lambda y, m, d, n, sam: (lambda body: body + str(luhn_digit(body[2:])))(
            f"{y:04d}{m:02d}{d + (60 if sam else 0):02d}{n:03d}"
        ),
        st.integers(1900, 2030),
        st.integers(1, 12),
        st.integers(1, 31),
        st.integers(0, 999),
        st.booleans(),
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(identity_text, min_size=1, max_size=30), st.sampled_from([None, "pnr", "samnr", "resnr"]))
def test_vectorised_agrees_with_scalar(values, declared):
    df = pl.DataFrame({"v": values, "t": [declared] * len(values)}, schema={"v": pl.String, "t": pl.String})
    out = with_identity(df, pl.col("v"), AS_OF, pl.col("t") if declared else None)
    assert out.columns == ["v", "t", "id_kind", "id_valid", "id_birth", "id_sex", "id_reason"]
    for row in out.iter_rows(named=True):
        c = classify(row["v"], AS_OF, declared)
        assert row["id_valid"] == c.valid, row
        assert row["id_reason"] == c.reason, row
        assert row["id_birth"] == c.birth_date, row
        assert row["id_sex"] == c.sex, row


def test_vectorised_reads_the_spec_examples_as_the_scalar_does():
    values = ["19810829M071", "19450829K088", "19930829X802", "198112189876", "198112189877", "19810829M072"]
    out = with_identity(pl.DataFrame({"v": values}), pl.col("v"), AS_OF)
    assert out["id_valid"].to_list() == [True, True, True, True, False, False]
    assert out["id_kind"].to_list() == ["RESNR", "RESNR", "RESNR", "PNR", "PNR", "RESNR"]
    assert out["id_reason"].to_list()[4:] == ["check digit does not match"] * 2
