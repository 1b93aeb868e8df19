import pytest

from vcm import sequences
from vcm.video.naming import parse_name, parse_size
from vcm.errors import VcmError


def test_manifest_matches_ctc_table():
    seqs = {s.name: s for s in sequences.manifest()}
    assert len(seqs) == 8
    assert {s.name for s in sequences.by_class("C")} == {"BasketballDrill", "BQMall", "PartyScene", "RaceHorsesC"}
    bq = seqs["BQMall"]
    assert (bq.width, bq.height, bq.fps, bq.frames, bq.ctc_first, bq.ctc_last, bq.ctc_count) == (832, 480, 60, 600, 471, 599, 129)
    assert bq.qps("ra") == [22, 26, 30, 34, 38, 42] and bq.qps("ai")[0] == 20
    assert seqs["RaceHorsesD"].ctc_count == 65 and seqs["BasketballPass"].ctc_count == 97


@pytest.mark.parametrize("name,expected", [
    ("BQMall", "BQMall"), ("bqmall", "BQMall"), ("RaceHorsesC", "RaceHorsesC"),
    ("RaceHorses_416x240_30", "RaceHorsesD"), ("BQSquare_416x240_60", "BQSquare"), ("Nope", None),
])
def test_lookup(name, expected):
    seq = sequences.lookup(name)
    assert (seq.name if seq else None) == expected


def test_parse_names():
    p = parse_name("BQMall_832x480_60Hz_8bit_P420")
    assert (p.name, p.width, p.height, p.fps, p.bit_depth, p.is_val_clip) == ("BQMall", 832, 480, 60.0, 8, False)
    p = parse_name("RaceHorses_416x240_30_val")
    assert p.is_val_clip and p.fps == 30.0
    assert parse_name("Clip_20x16").fps is None
    assert parse_name("carphone") is None
    assert parse_size("832x480") == (832, 480)
    with pytest.raises(VcmError):
        parse_size("832*480")
